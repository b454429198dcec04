"""The manifest written beside every data output (``OUT.jsonl`` -> ``OUT.manifest.json``).

It says where every conversation came from and what was left out and why:

* ``inputs``: each input file with its sha256, size, and the source it was read as;
* ``records_in`` / ``records_out`` / ``skipped``: raw records read, records that produced output, and
  records skipped by reason. The invariant ``records_in == records_out + sum(skipped.values())`` holds
  always and is checked before writing;
* ``conversations_out`` and ``per_source``: conversations written, in all and per source (one raw record
  can give several conversations: an OpenAssistant tree, a long ShareGPT chat split in chunks);
* ``dropped``: conversations removed after conversion (a mixture's down-sampling, decontamination ...), by
  reason, per source;
* ``config``, ``command``, ``versions``, ``output`` (path, sha256, lines).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.io import (
    Publication,
    finish_publication,
    publish_together,
    read_json,
    sha256_file,
    versions,
    write_json,
)


def manifest_path(output: str | Path) -> Path:
    """``runs/mix.jsonl`` -> ``runs/mix.manifest.json``."""
    output = Path(output)
    name = output.name
    for suffix in (".jsonl.gz", ".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return output.with_name(name + ".manifest.json")


@dataclass
class Manifest:
    kind: str
    inputs: list[dict[str, Any]] = field(default_factory=list)
    records_in: int = 0
    records_out: int = 0
    skipped: Counter = field(default_factory=Counter)
    conversations_out: int = 0
    per_source: Counter = field(default_factory=Counter)
    dropped: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    output: dict[str, Any] = field(default_factory=dict)

    def add_input(self, path: str | Path, source: str | None = None, **info: Any) -> None:
        path = Path(path)
        self.inputs.append(
            {"path": str(path), "sha256": sha256_file(path), "bytes": path.stat().st_size, "source": source, **info}
        )

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] += n

    def drop(self, reason: str, source: str, n: int = 1) -> None:
        self.dropped[reason][source] += n

    def check(self) -> None:
        skipped = sum(self.skipped.values())
        if self.records_in != self.records_out + skipped:
            raise AssertionError(
                f"manifest count invariant broken: {self.records_in} read != {self.records_out} used + "
                f"{skipped} skipped"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": self.inputs,
            "records_in": self.records_in,
            "records_out": self.records_out,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "conversations_out": self.conversations_out,
            "per_source": dict(sorted(self.per_source.items())),
            "dropped": {r: dict(sorted(c.items())) for r, c in sorted(self.dropped.items())},
            "config": self.config,
            "output": self.output,
            "versions": versions(),
            "command": [Path(sys.argv[0]).name, *sys.argv[1:]] if sys.argv else [],
            **self.extra,
        }

    def write(self, output: str | Path, publication: Publication | None = None) -> Path:
        """Check the invariant, record the output file's hash and write the manifest beside it.

        With ``publication`` (a :func:`~camels.core.io.publish_together` of the output and its manifest)
        the output's new content is its staged file, and the manifest is staged beside it, so the two are
        published as a pair."""
        self.check()
        output = Path(output)
        path = manifest_path(output)
        data = publication.temp(output) if publication is not None else output
        if data.exists():
            lines = sum(1 for _ in open(data, "rb"))
            self.output = {"path": str(output), "sha256": sha256_file(data), "lines": lines}
        if publication is None:
            write_json(path, self.to_dict())
        else:
            with publication.open(path) as f:
                json.dump(self.to_dict(), f, indent=2, sort_keys=True, ensure_ascii=False)
                f.write("\n")
        return path


def publish_with_manifest(output: str | Path) -> AbstractContextManager[Publication]:
    """``with publish_with_manifest(out) as pub:`` write ``pub.open(out)``, then ``manifest.write(out, pub)``:
    the output and its manifest reach their names together or not at all."""
    return publish_together(output, manifest_path(output))


def read_manifest(output: str | Path) -> dict[str, Any] | None:
    """The manifest beside ``output``, or None when there is none (an interrupted publication of the pair
    is completed first, so the manifest read is the one of the output beside it)."""
    finish_publication(output)
    path = manifest_path(output)
    return read_json(path) if path.exists() else None
