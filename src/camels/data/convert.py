"""``camels data convert``: raw dataset files -> unified conversations (JSONL) + manifest.

This module is the only place that reads raw files; the per-source converters in
:mod:`camels.data.sources` are pure. What it reads (chosen by file name, then by content):

=========  ============================================================================================
format     how it is read
=========  ============================================================================================
jsonl      ``*.jsonl`` (and ``*.json`` files holding one object per line): streamed line by line
json       ``*.json`` holding a list (loaded whole: the largest source file, ShareGPT, is ~700 MB of
           text and fits in memory; JSONL is the streaming format) or one object (a SuperNI task)
tsv        ``*.tsv``: streamed, one row of tab-separated columns per line, no header (Flan CoT files)
parquet    ``*.parquet``: in record batches, needs ``pyarrow`` (imported only then)
hf         ``hf:org/name[:split]`` (or ``hf:org/name:config:split``): a dataset hub name, streamed with
           ``datasets`` (imported only then)
=========  ============================================================================================

``.gz`` is accepted on the three text formats. Locations in errors: JSONL and TSV name the 1-based
line (``file.jsonl:17: output: ...``); JSON lists, parquet and hub rows name the 0-based element index
before the field (``file.json: [16].output: ...``).

Strict (default): the first broken record stops the run with its file, line and field, and nothing is
written. Lenient: broken records are counted by reason in the manifest. Records the source's rule leaves
out (:class:`~camels.data.sources.Skip`) are counted in both modes. Always ``records_in == records_out +
sum(skipped)``. A file whose first record does not have the asked source's shape fails at once
(``wrong_format``), in both modes.

Ids: a record's own id when it has one, else ``<file stem>:<row index>`` (0-based index among the
file's records), with ``#k`` when a record gives several conversations. Ids must be unique in one output.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.chat import EMPTY_ANSWER, Conversation
from camels.core.errors import ConfigError, RecordError
from camels.core.io import iter_lines, load_pretrained, parse_json, read_text
from camels.core.progress import progress as progress_bar
from camels.data.manifest import Manifest, publish_with_manifest
from camels.data.sources import Context, Skip, Source, get_source, whitespace_tokens

DEFAULT_SEED = 42
FORMATS = ("json", "jsonl", "tsv", "parquet", "hf")
RAW_SUFFIXES = (".json", ".jsonl", ".tsv", ".parquet", ".json.gz", ".jsonl.gz", ".tsv.gz")
EXAMPLES_PER_REASON = 3
DROPPED_PARTS = ("dropped_chunks", "dropped_pairs", "dropped_rounds")  # meta counts of parts left out


@dataclass(frozen=True)
class Loc:
    """Where a record is: its file, 1-based line (text formats) or None, and its 0-based record index."""

    file: str
    index: int
    line: int | None = None

    def locate(self, err: RecordError) -> RecordError:
        """The error with this location added (keeping its class, so a :class:`Skip` stays one)."""
        if self.line is None:
            out = (err.under(f"[{self.index}]") if err.file is None else err).located(file=self.file)
        else:
            out = err.located(file=self.file, line=self.line)
        return type(err)(out.reason, out.detail, field=out.field, file=out.file, line=out.line)


@dataclass
class Tally:
    """Counts of one conversion: records read, used, skipped by reason (with a few located examples)."""

    records_in: int = 0
    records_out: int = 0
    conversations: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kept: Counter = field(default_factory=Counter)

    dropped_parts: Counter = field(default_factory=Counter)

    def keep(self, convs: list[Conversation]) -> None:
        """Count conversations kept although camels' own rule would refuse them (an empty answer), and the
        parts of records a source's rule left out (``meta`` counts such as ``dropped_chunks``)."""
        self.kept[EMPTY_ANSWER] += sum(1 for c in convs if c.meta.get(EMPTY_ANSWER))
        for c in convs:
            for key in DROPPED_PARTS:
                value = c.meta.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    self.dropped_parts[key] += value

    def skip(self, err: RecordError) -> None:
        self.skipped[err.reason] += 1
        shown = self.examples.setdefault(err.reason, [])
        if len(shown) < EXAMPLES_PER_REASON:
            shown.append(str(err))

    def summary(self) -> str:
        skipped = ", ".join(f"{r}={n}" for r, n in sorted(self.skipped.items())) or "none"
        kept = "".join(f", {r}={n}" for r, n in sorted(self.kept.items()) if n)
        return (f"records in={self.records_in} out={self.records_out} "
                f"skipped={sum(self.skipped.values())} ({skipped}); conversations={self.conversations}{kept}")


# -- reading raw files ----------------------------------------------------------------------------------

def expand_inputs(inputs: Iterable[str | os.PathLike], ignored: list[str] | None = None) -> list[str]:
    """Input paths with folders replaced by their raw files (sorted); ``hf:`` names kept as they are.
    The other files of a folder are appended to ``ignored`` when it is given (the manifest lists them)."""
    out: list[str] = []
    for item in inputs:
        item = str(item)
        if item.startswith("hf:"):
            out.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            entries = sorted(p for p in path.iterdir() if p.is_file())
            files = [str(p) for p in entries if p.name.endswith(RAW_SUFFIXES)]
            if ignored is not None:
                ignored.extend(str(p) for p in entries if not p.name.endswith(RAW_SUFFIXES))
            if not files:
                raise ConfigError(f"{path}: no raw data files (*.json, *.jsonl, *.tsv, *.parquet) in this folder")
            out.extend(files)
        elif not path.exists():
            raise ConfigError(f"{path}: no such file")
        else:
            out.append(item)
    return out


def detect_format(path: str | os.PathLike) -> str:
    """``json``, ``jsonl``, ``tsv``, ``parquet`` or ``hf``: by name, and for ``.json`` by the first bytes."""
    name = str(path)
    if name.startswith("hf:"):
        return "hf"
    lower = name.lower().removesuffix(".gz")
    if lower.endswith(".parquet"):
        return "parquet"
    if lower.endswith(".tsv"):
        return "tsv"
    if lower.endswith(".jsonl"):
        return "jsonl"
    return _sniff_json(Path(path))


def _sniff_json(path: Path) -> str:
    """A JSON list or object is ``json``; several objects one per line is ``jsonl``."""
    first = None
    for _, line in iter_lines(path):
        if isinstance(line, RecordError):
            return "jsonl"  # let the reader report the bad bytes with their line
        if first is None:
            first = line.strip()
            if first.startswith("["):
                return "json"
            try:
                parse_json(first)
            except RecordError as e:
                if e.reason == "too_deep":
                    return "jsonl"  # one record per line; the reader counts or reports it
                return "json"  # an object spread over lines
            continue
        return "jsonl"  # a complete object on the first line and more lines after it
    return "json"


def read_rows(path: str, fmt: str) -> Iterator[tuple[Loc, Any]]:
    """Yield ``(location, row)`` pairs; a record that cannot be read is yielded as a located RecordError."""
    if fmt in ("jsonl", "tsv"):
        index = 0
        for n, line in iter_lines(path):
            loc = Loc(path, index, n)
            index += 1
            if isinstance(line, RecordError):
                yield loc, line
            elif fmt == "tsv":
                yield loc, tuple(line.split("\t"))
            else:
                try:
                    row = parse_json(line, file=path, line=n)
                except RecordError as e:
                    row = e
                yield loc, row
    elif fmt == "json":
        text = read_text(path)
        if not text.strip():
            return  # an empty file: no records (the caller warns)
        data = parse_json(text, file=path)  # a file that is not JSON at all fails here, naming its line
        if isinstance(data, list):
            for i, row in enumerate(data):
                yield Loc(path, i), row
        else:
            yield Loc(path, 0), data
    elif fmt == "parquet":
        yield from _read_parquet(path)
    elif fmt == "hf":
        yield from _read_hub(path)
    else:
        raise ConfigError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")


def _read_parquet(path: str) -> Iterator[tuple[Loc, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError(f"{path}: reading parquet needs pyarrow (pip install pyarrow)") from None
    index = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
        for row in batch.to_pylist():
            yield Loc(path, index), row
            index += 1


def _read_hub(spec: str) -> Iterator[tuple[Loc, Any]]:
    """``hf:org/name[:split]`` or ``hf:org/name:config:split`` streamed from the dataset hub (needs
    ``datasets`` and network; never exercised by the tests)."""
    parts = spec[3:].split(":")
    if len(parts) > 3 or not parts[0]:
        raise ConfigError(f"{spec}: expected hf:org/name, hf:org/name:split or hf:org/name:config:split")
    name, config, split = parts[0], (parts[1] if len(parts) == 3 else None), parts[-1] if len(parts) > 1 else ""
    try:
        import datasets
    except ImportError:
        raise ConfigError(f"{spec}: loading from the hub needs `datasets` (pip install camels-instruct[hub])") from None
    try:
        rows = datasets.load_dataset(name, config, split=split or "train", streaming=True)
    except Exception as e:  # the hub library raises many types; the user needs the sentence
        raise ConfigError(f"{spec}: cannot load from the hub: {e}") from None
    for i, row in enumerate(rows):
        yield Loc(spec, i), row


# -- converting -----------------------------------------------------------------------------------------

def resolve_options(source: Source, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """The source's defaults updated with ``options``; an unknown key is a :class:`ConfigError`."""
    resolved = dict(source.defaults)
    for key, value in (options or {}).items():
        if key not in resolved:
            known = ", ".join(sorted(source.defaults)) or "none"
            raise ConfigError(f"source {source.name} has no option {key!r} (options: {known})")
        resolved[key] = value
    for key, allowed in source.choices.items():
        if key in resolved and resolved[key] not in allowed:
            raise ConfigError(f"source {source.name}: option {key}={resolved[key]!r} is not one of "
                              f"{', '.join(map(str, allowed))}")
    return resolved


def preset_options(source: Source, preset: str | None, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` over a preset: ``tulu-v1`` (the study's rules, the sources' defaults) or ``camels``
    (camels' own behaviours, :attr:`Source.camels`); options given explicitly win."""
    if preset in (None, "tulu-v1"):
        return dict(options or {})
    if preset != "camels":
        raise ConfigError(f"unknown preset {preset!r} (known: tulu-v1, camels)")
    return {**source.camels, **(options or {})}


def parse_option(text: str) -> tuple[str, Any]:
    """``"top_k=2"`` -> ``("top_k", 2)``; values read as int, float, true/false, none, else string.

    >>> parse_option("top_k=2"), parse_option("lang=none"), parse_option("skip_deleted=false")
    (('top_k', 2), ('lang', None), ('skip_deleted', False))
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"option {text!r} is not KEY=VALUE")
    low = raw.strip().lower()
    value: Any = raw
    if low in ("none", "null"):
        value = None
    elif low in ("true", "false"):
        value = low == "true"
    else:
        for kind in (int, float):
            try:
                value = kind(raw)
                break
            except ValueError:
                continue
    return key.strip(), value


def token_counter(tokenizer: Any = None) -> Callable[[str], int]:
    """Whitespace words without a tokenizer; with a name or path, a transformers tokenizer's count."""
    if tokenizer is None:
        return whitespace_tokens
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tok = load_pretrained(AutoTokenizer, tokenizer)
    elif callable(getattr(tokenizer, "encode", None)):
        tok = tokenizer
    else:
        raise ConfigError(f"cannot count tokens with {tokenizer!r}")
    return lambda text: len(tok.encode(text, add_special_tokens=False))


def _describe(row: Any) -> str:
    if isinstance(row, Mapping):
        keys = ", ".join(list(map(str, row))[:8]) or "none"
        return f"an object with fields {keys}"
    if isinstance(row, (list, tuple)):
        return f"a row of {len(row)} columns"
    return f"a {type(row).__name__}"


def iter_records(source: Source | str, path: str, *, seed: int = DEFAULT_SEED,
                 options: Mapping[str, Any] | None = None, count_tokens: Callable[[str], int] | None = None,
                 fmt: str | None = None, progress: bool = False, stream: random.Random | None = None
                 ) -> Iterator[tuple[Loc, list[Conversation] | RecordError]]:
    """Each record of one raw file with its conversations, or the located error that stopped it.

    Raises at once (both modes) when the file's format or first record does not fit ``source``.
    ``stream``: the generator of the records' random draws in file order (``draw=stream``); a new one
    seeded with ``seed`` when not given (pass one to continue it over several files).
    """
    stream = stream if stream is not None else random.Random(seed)
    source = get_source(source) if isinstance(source, str) else source
    opts = resolve_options(source, options)
    fmt = fmt or detect_format(path)
    if fmt not in source.formats:
        raise RecordError("wrong_format", f"source {source.name} does not read {fmt} files "
                          f"(it reads {', '.join(source.formats)}: {source.shape})", file=str(path))
    stem = _stem(path)
    rows: Iterable[tuple[Loc, Any]] = read_rows(str(path), fmt)
    if progress:
        rows = progress_bar(rows, desc=f"{source.name} {Path(stem).name}", unit="rec")
    if source.assemble is not None:
        rows = source.assemble(rows)
    checked = False
    for loc, row in rows:
        if isinstance(row, RecordError):
            yield loc, loc.locate(row)
            continue
        if not checked:
            if not source.detect(row):
                raise loc.locate(RecordError(
                    "wrong_format", f"this does not look like {source.name} data: the first record is "
                    f"{_describe(row)}; expected {source.shape}"))
            checked = True
        ctx = Context(source.name, stem=stem, index=loc.index, seed=seed, options=opts,
                      count_tokens=count_tokens or whitespace_tokens, stream=stream)
        try:
            yield loc, source.convert(row, ctx)
        except RecordError as e:
            yield loc, loc.locate(e)


def _stem(path: str | os.PathLike) -> str:
    name = str(path)
    if name.startswith("hf:"):
        return name[3:].replace("/", "__")  # ids hold no path separator
    name = Path(name).name
    for suffix in (".gz", ".jsonl", ".json", ".tsv", ".parquet"):
        name = name.removesuffix(suffix)
    return name


def iter_conversations(source: Source | str, path: str | os.PathLike, *,
                       errors: list[RecordError] | None = None, seed: int = DEFAULT_SEED,
                       options: Mapping[str, Any] | None = None, count_tokens: Callable[[str], int] | None = None,
                       tally: Tally | None = None, progress: bool = False) -> Iterator[Conversation]:
    """The conversations of one raw file (or of the raw files of a folder), for mixtures and benchmarks.

    Strict when ``errors`` is None: a broken record raises its located :class:`RecordError`. Lenient
    when ``errors`` is a list: broken records are appended to it and reading goes on. Records left out
    by the source's rule (:class:`Skip`) are appended to ``errors`` when given and counted in ``tally``.
    """
    tally = tally if tally is not None else Tally()
    stream = random.Random(seed)
    for one in expand_inputs([path]):
        yield from _conversations_of(source, one, errors, seed, options, count_tokens, tally, progress, stream)


def _conversations_of(source, path, errors, seed, options, count_tokens, tally, progress, stream):
    for _, result in iter_records(source, path, seed=seed, options=options, count_tokens=count_tokens,
                                  progress=progress, stream=stream):
        tally.records_in += 1
        if isinstance(result, RecordError):
            if errors is None and not isinstance(result, Skip):
                raise result
            if errors is not None:
                errors.append(result)
            tally.skip(result)
            continue
        tally.records_out += 1
        tally.conversations += len(result)
        tally.keep(result)
        yield from result


def convert(source: str | Source, inputs: Sequence[str | os.PathLike] | str, output: str | os.PathLike, *,
            lenient: bool = False, seed: int = DEFAULT_SEED, options: Mapping[str, Any] | None = None,
            tokenizer: Any = None, progress: bool = True, preset: str | None = None) -> Manifest:
    """Convert raw files of one source into ``output`` (JSONL, written atomically) and its manifest.

    ``preset``: ``tulu-v1`` (default: the study's rules) or ``camels`` (camels' own options).
    """
    source = get_source(source) if isinstance(source, str) else source
    options = preset_options(source, preset, options)
    task_list = options.pop("tasks", None) if source.name == "superni" else None
    opts = resolve_options(source, options)
    ignored: list[str] = []
    paths = expand_inputs([inputs] if isinstance(inputs, (str, os.PathLike)) else inputs, ignored=ignored)
    if task_list is not None:
        paths = _select_tasks(paths, task_list, skip_mmmlu=opts.get("split") == "study")
    count = token_counter(tokenizer)
    manifest = Manifest(kind="convert")
    tally = Tally()
    per_source: Counter = Counter()
    seen: set[str] = set()
    stream = random.Random(seed)  # one stream of draws over every file, in the order given
    warnings: list[str] = []
    with publish_with_manifest(output) as pub:
        with pub.open(output) as f:
            for path in paths:
                before = tally.records_in
                for loc, result in iter_records(source, path, seed=seed, options=opts, count_tokens=count,
                                                progress=progress, stream=stream):
                    tally.records_in += 1
                    if not isinstance(result, RecordError):
                        result = _check_ids(result, seen, loc)
                    if isinstance(result, RecordError):
                        if not lenient and not isinstance(result, Skip):
                            raise result
                        tally.skip(result)
                        continue
                    tally.records_out += 1
                    tally.keep(result)
                    for conv in result:
                        seen.add(conv.id)
                        per_source[conv.dataset] += 1
                        tally.conversations += 1
                        f.write(conv.to_json())
                        f.write("\n")
                if path.startswith("hf:"):
                    manifest.inputs.append({"path": path, "source": source.name, "hub": True})
                else:
                    manifest.add_input(path, source=source.name, records=tally.records_in - before)
                if tally.records_in == before:
                    warnings.append(f"{path}: no records in this input (an empty file?)")
        manifest.records_in, manifest.records_out = tally.records_in, tally.records_out
        manifest.skipped.update(tally.skipped)
        manifest.conversations_out = tally.conversations
        manifest.extra["kept"] = {r: n for r, n in sorted(tally.kept.items()) if n}
        manifest.extra["dropped_parts"] = {r: n for r, n in sorted(tally.dropped_parts.items()) if n}
        manifest.per_source.update(per_source)
        manifest.config = {
            "source": source.name, "seed": seed, "lenient": lenient, "preset": preset or "tulu-v1",
            "options": _jsonable(opts),
            "tasks": str(task_list) if task_list is not None else None,
            "tokenizer": tokenizer if isinstance(tokenizer, str) else ("whitespace" if tokenizer is None else
                                                                        type(tokenizer).__name__),
        }
        manifest.extra["skip_examples"] = tally.examples
        manifest.extra["ignored_files"] = ignored
        manifest.extra["warnings"] = warnings
        manifest.extra["summary"] = tally.summary()
        manifest.write(output, pub)
    return manifest


def _check_ids(convs: list[Conversation], seen: set[str], loc: Loc) -> list[Conversation] | RecordError:
    ids = [c.id for c in convs]
    for i in ids:
        if i in seen or ids.count(i) > 1:
            return loc.locate(RecordError("duplicate_id", f"conversation id {i!r} is already in the output",
                                          field="id"))
    return convs


def _select_tasks(paths: list[str], task_list: Any, *, skip_mmmlu: bool = False) -> list[str]:
    """The SuperNI task files named in ``task_list`` (one task name per line, e.g. train_tasks.txt), in the
    list's order (the order of the study's draws); ``skip_mmmlu`` leaves out ``_mmmlu_`` tasks as the study
    did (they are translations of MMLU, an evaluation set)."""
    try:
        lines = read_text(task_list).splitlines()
    except OSError as e:
        raise ConfigError(f"{task_list}: cannot read the task list: {e.strerror}") from None
    order = {name: i for i, name in enumerate(dict.fromkeys(
        line.strip() for line in lines if line.strip() and not (skip_mmmlu and "_mmmlu_" in line)))}
    kept = sorted((p for p in paths if _stem(p) in order), key=lambda p: order[_stem(p)])
    if not kept:
        raise ConfigError(f"{task_list}: none of the {len(paths)} input files is a listed task")
    return kept


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
