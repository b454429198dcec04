"""Named mixtures: how many conversations to take from each converted source, reproducibly.

A mixture is a small versioned YAML file (``configs/mixtures/<name>.yaml``)::

    name: tulu-v1
    version: 1
    seed: 42
    sources:
      flan_v2: {path: data/converted/flan_v2.jsonl, count: 100000}
      oasst1:  {path: data/converted/oasst1.jsonl, count: all}
      dolly:   {files: [a.jsonl, b.jsonl], fraction: 0.5, on_short: error}

Per source exactly one of ``count`` (an integer, or ``all``) and ``fraction`` (a share of the valid records
available, ``round(fraction * available)`` with halves rounded up; above 1.0 means up-sampling). With
neither, ``all``. ``path`` or ``files`` name the unified JSONL input(s); relative paths resolve against the
current folder and any of them can be replaced on the command line (``--input flan_v2=other.jsonl``).

Sampling rule, per source (``available`` = valid records, ``k`` = records wanted):

* ``k < available``: down-sample: ``k`` distinct records, a seeded sample without replacement; the rest is
  recorded in the manifest as ``dropped["downsampled"][source]``;
* ``k > available`` and ``on_short: upsample`` (the default): every record ``k // available`` times, plus a
  seeded sample without replacement of ``k % available`` records once more; the extra copies are recorded
  as ``duplicates`` (a warning is printed: nothing is repeated silently);
  ``on_short: cap`` takes every record once and records the shortfall; ``on_short: error`` refuses.

Determinism: each source draws from its own ``random.Random`` seeded with the string
``"camels-mix:<seed>:<source>"`` (string seeds are hashed with SHA-512 by Python, not with ``hash()``, so
``PYTHONHASHSEED`` plays no part), and the final order is one seeded Fisher-Yates shuffle of record
indices. Same config + same input bytes -> byte-identical output. Adding or removing one source does not
change which records another source contributes.

``sampling: study`` (the ``tulu-v1`` mixture) draws down-samples as the Tülu v1 study did instead: one
``random.Random(seed)`` for the whole mixture, sources visited in the file's order, and a down-sample of
``k`` of a source's ``n`` records is ``random.sample(range(n), k)`` (the study's ``random.sample(examples,
k=k)`` over the records in file order; a source taking all its records draws nothing). So a source
converted with every record kept gets the study's selection. Up-sampling (which the study never did) and
the final shuffle stay camels' own.

Memory stays flat in the size of the records: pass 1 streams each file once, validates every line and
keeps only its byte offset (8 bytes) and whether it is already in canonical form (1 byte); the shuffle
permutes integer indices; pass 2 writes the chosen lines by seeking to their offsets. Gzipped inputs are
decompressed to a temporary file beside the output during pass 1, because gzip cannot seek.

The per-source experiments of the study (one model per dataset) use ``single:SOURCE[:COUNT]``: a mixture of
that one source (all of it, or COUNT conversations), with the path given by ``--input SOURCE=PATH``.
"""

from __future__ import annotations

import gzip
import os
import random
import shutil
import tempfile
from array import array
from collections import Counter
from collections.abc import Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from camels.core import config
from camels.core.errors import ConfigError, RecordError
from camels.core.io import Publication, sha256_file
from camels.core.progress import progress
from camels.data.manifest import Manifest, manifest_path, read_manifest
from camels.data.records import parse_line

ON_SHORT = ("upsample", "cap", "error")
SAMPLING = ("camels", "study")
MIXTURE_DIR_ENV = "CAMELS_MIXTURES"


# -- the config ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceSpec:
    """One source of a mixture: where its records are and how many to take."""

    name: str
    files: tuple[str, ...]
    count: int | None = None  # None with fraction None means "all"
    fraction: float | None = None
    on_short: str = "upsample"

    def target(self, available: int) -> int:
        """Records wanted from ``available`` valid records (before the ``on_short`` rule)."""
        if self.fraction is not None:
            return int(self.fraction * available + 0.5)
        if self.count is None:
            return available
        return self.count

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"files": list(self.files)}
        if self.fraction is not None:
            out["fraction"] = self.fraction
        else:
            out["count"] = "all" if self.count is None else self.count
        out["on_short"] = self.on_short
        return out


@dataclass(frozen=True)
class Mixture:
    """A named, versioned recipe: sources with counts or fractions, and a seed."""

    name: str
    version: int | str
    seed: int
    sources: tuple[SourceSpec, ...]
    description: str = ""
    sampling: str = "camels"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "seed": self.seed,
            "sampling": self.sampling,
            "sources": {s.name: s.to_dict() for s in self.sources},
        }

    def with_inputs(self, inputs: Mapping[str, str | Sequence[str]]) -> Mixture:
        """Replace the files of named sources (``--input flan_v2=path``); unknown names are an error."""
        known = {s.name for s in self.sources}
        unknown = sorted(set(inputs) - known)
        if unknown:
            raise ConfigError(
                f"--input {unknown[0]}=...: mixture {self.name!r} has no source {unknown[0]!r} "
                f"(its sources: {', '.join(sorted(known))})"
            )
        sources = []
        for s in self.sources:
            if s.name in inputs:
                new = inputs[s.name]
                files = (new,) if isinstance(new, str) else tuple(new)
                s = SourceSpec(s.name, tuple(str(f) for f in files), s.count, s.fraction, s.on_short)
            sources.append(s)
        return Mixture(self.name, self.version, self.seed, tuple(sources), self.description, self.sampling)

    def with_seed(self, seed: int | None) -> Mixture:
        if seed is None:
            return self
        return Mixture(self.name, self.version, int(seed), self.sources, self.description, self.sampling)


@dataclass
class _SourceFields:
    """One source as written in the YAML (checked by the config loader, then by :func:`_source_from_fields`)."""

    path: str | None = None
    files: list[str] | None = None
    count: int | str | None = None
    fraction: float | None = None
    on_short: str = "upsample"


@dataclass
class _MixtureFields:
    """A mixture file as written (see the module docstring)."""

    name: str
    sources: dict[str, _SourceFields]
    version: int | str = 1
    seed: int = 42
    description: str = ""
    sampling: str = "camels"


def mixture_from_dict(d: Any, *, origin: str = "mixture", lines: Mapping[str, int] | None = None) -> Mixture:
    """Validate a parsed YAML mapping (through :mod:`camels.core.config`); errors name the file and the key."""
    fields = config.build(_MixtureFields, d, origin=origin, lines=lines)
    if not fields.sources:
        raise ConfigError(f"{origin}: sources: expected a non-empty mapping of source name -> settings")
    sources = [_source_from_fields(name, spec, origin) for name, spec in fields.sources.items()]
    if fields.sampling not in SAMPLING:
        raise ConfigError(f"{origin}: sampling: expected one of {', '.join(SAMPLING)}, got {fields.sampling!r}")
    return Mixture(name=fields.name, version=fields.version, seed=fields.seed, sources=tuple(sources),
                   description=fields.description, sampling=fields.sampling)


def _source_from_fields(name: str, spec: _SourceFields, origin: str) -> SourceSpec:
    where = f"{origin}: sources.{name}"
    if spec.path is not None and spec.files is not None:
        raise ConfigError(f"{where}: give either path or files, not both")
    if spec.files is not None:
        if not spec.files or not all(spec.files):
            raise ConfigError(f"{where}.files: expected a non-empty list of paths")
        files_t = tuple(spec.files)
    elif spec.path is not None:
        if not spec.path:
            raise ConfigError(f"{where}.path: expected a path")
        files_t = (spec.path,)
    else:
        files_t = ()  # must come from --input
    if spec.count is not None and spec.fraction is not None:
        raise ConfigError(f"{where}: give either count or fraction, not both")
    c = spec.count
    if c == "all":
        c = None
    elif c is not None and (isinstance(c, str) or c < 0):
        raise ConfigError(f"{where}.count: expected a non-negative integer or 'all', got {c!r}")
    if spec.fraction is not None and spec.fraction < 0:
        raise ConfigError(f"{where}.fraction: expected a number >= 0, got {spec.fraction!r}")
    if spec.on_short not in ON_SHORT:
        raise ConfigError(f"{where}.on_short: expected one of {', '.join(ON_SHORT)}, got {spec.on_short!r}")
    return SourceSpec(name, files_t, c, spec.fraction, spec.on_short)


def mixture_dirs() -> list[Path]:
    """Where named mixtures are looked up: ``$CAMELS_MIXTURES``, ``./configs/mixtures``, camels' own."""
    dirs = []
    if os.environ.get(MIXTURE_DIR_ENV):
        dirs.append(Path(os.environ[MIXTURE_DIR_ENV]))
    dirs.append(Path.cwd() / "configs" / "mixtures")
    dirs.append(Path(__file__).resolve().parents[1] / "configs" / "mixtures")
    return dirs


def named_mixtures() -> dict[str, Path]:
    """Name -> YAML file of every mixture found in :func:`mixture_dirs` (first found wins)."""
    out: dict[str, Path] = {}
    for d in mixture_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.yaml")):
                out.setdefault(p.stem, p)
    return out


def load_mixture(spec: str) -> Mixture:
    """A mixture from a YAML path, a name (``tulu-v1``) or ``single:SOURCE[:COUNT]``."""
    if spec.startswith("single:"):
        parts = spec.split(":")
        if len(parts) not in (2, 3) or not parts[1]:
            raise ConfigError(f"{spec!r}: expected single:SOURCE or single:SOURCE:COUNT")
        source = {"count": "all"}
        if len(parts) == 3:
            if not parts[2].isdigit():
                raise ConfigError(f"{spec!r}: COUNT must be a non-negative integer")
            source = {"count": int(parts[2])}
        return mixture_from_dict({"name": spec, "version": 1, "seed": 42, "sources": {parts[1]: source}},
                                 origin=spec)
    path = Path(spec)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        known = named_mixtures()
        if spec not in known:
            raise ConfigError(
                f"unknown mixture {spec!r}: not a file and not a named mixture "
                f"(known: {', '.join(sorted(known)) or 'none found'}; or single:SOURCE)"
            )
        path = known[spec]
    data, lines = config.read_yaml(path)
    return mixture_from_dict(data, origin=str(path), lines=lines)


# -- pass 1: index the inputs ----------------------------------------------------------------------------


@dataclass
class SourceIndex:
    """What pass 1 learnt about one source: per valid record, its file, byte offset and canonical flag."""

    name: str
    files: list[Path] = field(default_factory=list)  # readable (decompressed) files, by file number
    file_no: array = field(default_factory=lambda: array("H"))
    offsets: array = field(default_factory=lambda: array("q"))
    canonical: bytearray = field(default_factory=bytearray)
    read: int = 0
    skipped: Counter = field(default_factory=Counter)

    @property
    def available(self) -> int:
        return len(self.offsets)


def _iter_raw(path: Path, spill_dir: Path | None) -> Iterator[tuple[Path, int, int, bytes]]:
    """Yield ``(readable file, line number, byte offset, raw line)`` for every line of ``path``.

    A gzipped file is copied, decompressed, to a temporary file in ``spill_dir`` as it is read, and offsets
    refer to that copy.
    """
    if path.suffix != ".gz":
        with open(path, "rb") as f:
            offset = 0
            for n, raw in enumerate(f, start=1):
                yield path, n, offset, raw
                offset += len(raw)
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".mix.tmp", dir=spill_dir)
    tmp_path = Path(tmp)
    with os.fdopen(fd, "wb") as out, gzip.open(path, "rb") as f:
        offset = 0
        for n, raw in enumerate(f, start=1):
            out.write(raw)
            yield tmp_path, n, offset, raw
            offset += len(raw)


def index_source(
    spec: SourceSpec,
    *,
    lenient: bool = False,
    spill_dir: Path | None = None,
    show_progress: bool = False,
    written_by_camels: Container[str] = (),
) -> SourceIndex:
    """Pass 1 over one source: validate every line, keep offsets of the valid ones.

    Strict mode raises the first :class:`RecordError` with file, line and field; lenient mode counts it in
    ``skipped`` by reason and goes on. Lines of files in ``written_by_camels`` (their producing step's
    manifest records exactly their hash) are still validated but known to be canonical, which saves
    serialising every record again to compare.
    """
    if not spec.files:
        raise ConfigError(f"source {spec.name!r} has no input file: give --input {spec.name}=PATH")
    idx = SourceIndex(spec.name)
    for fname in spec.files:
        path = Path(fname)
        if not path.is_file():
            raise ConfigError(f"source {spec.name!r}: input file {path} does not exist")
        file_no = None
        trusted = str(path) in written_by_camels
        lines: Iterator[tuple[Path, int, int, bytes]] = _iter_raw(path, spill_dir)
        if show_progress:
            lines = progress(lines, desc=f"read {spec.name}", unit="line")
        for readable, n, offset, raw in lines:
            if file_no is None:
                idx.files.append(readable)
                file_no = len(idx.files) - 1
            if not raw.strip():
                continue
            idx.read += 1
            try:
                _, canonical = parse_line(raw, check_canonical=not trusted)
            except RecordError as e:
                if not lenient:
                    raise e.located(file=str(path), line=n) from None
                idx.skipped[e.reason] += 1
                continue
            idx.file_no.append(file_no)
            idx.offsets.append(offset)
            idx.canonical.append(1 if canonical else 0)
    return idx


# -- selection -------------------------------------------------------------------------------------------


@dataclass
class Selection:
    """Which records of a source go into the mixture (indices into its :class:`SourceIndex`)."""

    source: str
    available: int
    target: int
    picked: array  # record indices, with repeats when up-sampled
    downsampled: int = 0
    duplicates: int = 0
    short: int = 0  # wanted but not taken (on_short: cap)


def _rng(seed: int, what: str) -> random.Random:
    return random.Random(f"camels-mix:{seed}:{what}")


def select(spec: SourceSpec, available: int, seed: int, study: random.Random | None = None) -> Selection:
    """Apply the count/fraction and the up/down-sampling rule (see the module docstring).

    ``study``: the study's shared stream; a down-sample is then ``study.sample(range(available), k)``, the
    draw of the study's ``random.sample(examples, k=k)`` on the source's records in file order.
    """
    k = spec.target(available)
    rng = _rng(seed, spec.name)
    picked = array("q")
    sel = Selection(spec.name, available, k, picked)
    if k <= available:
        if k == available:
            picked.extend(range(available))
        elif study is not None:
            picked.extend(study.sample(range(available), k))
            sel.downsampled = available - k
        else:
            picked.extend(sample_indices(rng, available, k))
            sel.downsampled = available - k
        return sel
    if spec.on_short == "error" or available == 0:
        why = "no valid records" if available == 0 else f"only {available} valid records"
        raise ConfigError(
            f"source {spec.name!r}: {k} conversations wanted but {why} "
            f"(on_short: {spec.on_short}; use on_short: upsample or cap, or a smaller count)"
        )
    if spec.on_short == "cap":
        picked.extend(range(available))
        sel.short = k - available
        return sel
    copies, rest = divmod(k, available)
    for _ in range(copies):
        picked.extend(range(available))
    picked.extend(sample_indices(rng, available, rest))
    sel.duplicates = k - available
    return sel


def sample_indices(rng: random.Random, n: int, k: int) -> array:
    """``k`` distinct indices of ``range(n)``, without replacement, in the order drawn.

    A partial Fisher-Yates shuffle over an int array (8 bytes an index, no Python int objects per record),
    drawing ``floor(random() * (n - i))`` like :func:`shuffle_in_place`. Not sorted: the mixture is
    shuffled afterwards anyway, and sorting would build a list of ``k`` Python ints.
    """
    pool = array("q", range(n))
    rand = rng.random
    for i in range(k):
        j = i + int(rand() * (n - i))
        pool[i], pool[j] = pool[j], pool[i]
    del pool[k:]
    return pool


def shuffle_in_place(a: array, rng: random.Random) -> None:
    """Fisher-Yates over an int array (no per-record Python objects kept alive).

    ``j = floor(random() * (i + 1))``: one 53-bit float per step, bias below 2**-30 for any realistic
    mixture size, and the same sequence on every platform for the same seed.
    """
    rand = rng.random
    for i in range(len(a) - 1, 0, -1):
        j = int(rand() * (i + 1))
        a[i], a[j] = a[j], a[i]


# -- the whole mix ---------------------------------------------------------------------------------------


@dataclass
class MixResult:
    output: Path
    manifest: Path
    written: int
    selections: dict[str, Selection]
    warnings: list[str]


def mix(
    mixture: Mixture,
    output: str | Path,
    *,
    lenient: bool = False,
    show_progress: bool = True,
) -> MixResult:
    """Build the mixture into ``output`` (JSONL) with its manifest (``kind="mix"``) beside it."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    names = [s.name for s in mixture.sources]
    if len(set(names)) != len(names):
        raise ConfigError(f"mixture {mixture.name!r}: a source name appears twice")
    specs = sorted(mixture.sources, key=lambda s: s.name)  # order independent of the YAML's key order
    manifest = Manifest(kind="mix")
    warnings: list[str] = []
    spill = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    pub = Publication(output, manifest_path(output))  # the output and its manifest, published as a pair
    try:
        indexes: list[SourceIndex] = []
        seen: dict[tuple[str, ...], SourceIndex] = {}  # a file list used by two sources is read once
        for spec in specs:
            trusted = {str(Path(f)) for f in spec.files if _add_input(manifest, Path(f), spec.name)}
            warnings.extend(f"{f}: no records in this input (an empty file)" for f in spec.files
                            if Path(f).stat().st_size == 0)
            idx = seen.get(spec.files)
            if idx is None:
                idx = index_source(spec, lenient=lenient, spill_dir=spill, show_progress=show_progress,
                                   written_by_camels=trusted)
                seen[spec.files] = idx
            indexes.append(idx)
            manifest.records_in += idx.read
            manifest.records_out += idx.available
            for reason, n in idx.skipped.items():
                manifest.skip(reason, n)

        selections: dict[str, Selection] = {}
        if mixture.sampling == "study":
            # the study's draws: one stream seeded once, sources in the mixture's own order
            stream = random.Random(mixture.seed)
            available = {spec.name: idx.available for spec, idx in zip(specs, indexes)}
            for spec in mixture.sources:
                selections[spec.name] = select(spec, available[spec.name], mixture.seed, stream)
        base = array("q")  # global record number of each source's record 0
        total_records = 0
        for spec, idx in zip(specs, indexes):
            if idx.available == 0 and spec.target(0) == 0 and spec.count != 0:
                raise ConfigError(
                    f"source {spec.name!r}: no valid records in {', '.join(spec.files)} "
                    f"({idx.read} read, skipped: {dict(sorted(idx.skipped.items())) or 'none'})"
                )
            sel = selections.get(spec.name) or select(spec, idx.available, mixture.seed)
            selections[spec.name] = sel
            base.append(total_records)
            total_records += idx.available
            if sel.downsampled:
                manifest.drop("downsampled", spec.name, sel.downsampled)
            if sel.duplicates:
                warnings.append(
                    f"{spec.name}: up-sampled {sel.available} -> {sel.target} conversations "
                    f"({sel.duplicates} repeated copies)"
                )
            if sel.short:
                warnings.append(f"{spec.name}: only {sel.available} of {sel.target} wanted (on_short: cap)")
            manifest.per_source[spec.name] = len(sel.picked)

        # One array of global record numbers, then one seeded shuffle.
        order = array("q")
        for i, spec in enumerate(specs):
            b = base[i]
            order.extend(b + r for r in selections[spec.name].picked)
        shuffle_in_place(order, _rng(mixture.seed, "shuffle"))

        written = _write(pub, output, order, specs, indexes, base, show_progress)
        manifest.conversations_out = written
        manifest.config = mixture.to_dict()
        manifest.extra["mixture"] = {"name": mixture.name, "version": mixture.version, "seed": mixture.seed}
        manifest.extra["sources"] = {
            spec.name: _source_report(spec, idx, selections[spec.name]) for spec, idx in zip(specs, indexes)
        }
        manifest.extra["duplicates"] = {s: sel.duplicates for s, sel in selections.items() if sel.duplicates}
        manifest.extra["warnings"] = warnings
        check_mix_invariant(manifest, selections)
        mpath = manifest.write(output, pub)
        pub.commit()
    finally:
        pub.abort()  # nothing left to remove after the commit
        shutil.rmtree(spill, ignore_errors=True)
    return MixResult(output, mpath, written, selections, warnings)


def _source_report(spec: SourceSpec, idx: SourceIndex, sel: Selection) -> dict[str, Any]:
    return {
        "read": idx.read,
        "skipped": dict(sorted(idx.skipped.items())),
        "available": idx.available,
        "target": sel.target,
        "out": len(sel.picked),
        "downsampled": sel.downsampled,
        "duplicates": sel.duplicates,
        "short": sel.short,
        "rule": spec.to_dict(),
    }


def check_mix_invariant(manifest: Manifest, selections: Mapping[str, Selection]) -> None:
    """Per source ``available - downsampled + duplicates == out``; outputs add up to the lines written."""
    for name, sel in selections.items():
        out = len(sel.picked)
        if sel.available - sel.downsampled + sel.duplicates != out:
            raise AssertionError(
                f"mix invariant broken for {name}: {sel.available} available - {sel.downsampled} downsampled "
                f"+ {sel.duplicates} duplicates != {out} out"
            )
        if manifest.dropped.get("downsampled", {}).get(name, 0) != sel.downsampled:
            raise AssertionError(f"mix invariant broken for {name}: manifest downsampled count differs")
    if sum(len(s.picked) for s in selections.values()) != manifest.conversations_out:
        raise AssertionError("mix invariant broken: per-source outputs do not add up to the lines written")
    manifest.check()


WRITERS = ("convert", "mix", "decontaminate")  # steps whose outputs are canonical Conversation.to_json lines


def _add_input(manifest: Manifest, path: Path, source: str) -> bool:
    """Record an input with its hash, and the manifest of the step that produced it when there is one.

    Return whether that manifest proves camels wrote this exact file (a writer step, same sha256)."""
    if not path.is_file():
        raise ConfigError(f"source {source!r}: input file {path} does not exist")
    digest = sha256_file(path)
    info: dict[str, Any] = {"path": str(path), "sha256": digest, "bytes": path.stat().st_size, "source": source}
    upstream = read_manifest(path)
    if upstream is not None:
        recorded = (upstream.get("output") or {}).get("sha256")
        info["upstream_manifest"] = {
            "path": str(manifest_path(path)),
            "kind": upstream.get("kind"),
            "matches_input": (recorded == digest) if recorded else None,
        }
    manifest.inputs.append(info)
    return bool(upstream and upstream.get("kind") in WRITERS and info["upstream_manifest"]["matches_input"])


def _write(
    pub: Publication,
    output: Path,
    order: array,
    specs: Sequence[SourceSpec],
    indexes: Sequence[SourceIndex],
    base: array,
    show_progress: bool,
) -> int:
    """Pass 2: write the chosen lines in ``order`` by seeking to their byte offsets."""
    import bisect

    handles: list[list[BinaryIO]] = [[open(f, "rb") for f in idx.files] for idx in indexes]
    starts = list(base)
    written = 0
    try:
        with pub.open(output, "wb") as out:
            it = progress(order, desc="write mix", total=len(order), unit="conv") if show_progress else order
            for g in it:
                s = bisect.bisect_right(starts, g) - 1
                idx = indexes[s]
                r = g - starts[s]
                fh = handles[s][idx.file_no[r]]
                fh.seek(idx.offsets[r])
                raw = fh.readline()
                if idx.canonical[r]:
                    line = raw.rstrip(b"\r\n")
                else:
                    conv, _ = parse_line(raw)
                    line = conv.to_json().encode("utf-8")
                out.write(line)
                out.write(b"\n")
                written += 1
    finally:
        for hs in handles:
            for h in hs:
                h.close()
    return written
