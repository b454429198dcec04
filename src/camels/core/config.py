"""The one config loader: YAML files and ``key=value`` overrides into typed dataclasses.

Every configuration camels reads (training recipes, task options, mixtures) is a dataclass whose field
annotations are the schema. :func:`load` reads a YAML file, applies ``key=value`` overrides (dotted keys
reach nested sections: ``lora.r=16``) and builds the dataclass; :func:`build` does the same for a mapping
already in memory and :func:`replace` for changes to an existing instance (task options). A config that is
more than one dataclass (a pipeline with its train section) is read with :func:`read_with_overrides`, which
keeps the mapping and where each key came from (:class:`Read`) for building its parts.

The rules, the same everywhere:

* **Unknown keys are errors**, with the closest known key suggested. Nothing is silently ignored.
* **Types come from the annotations**: ``bool``, ``int``, ``float``, ``str``, ``X | None``, unions,
  ``Literal[...]``, ``list[X]``, ``tuple[X, ...]``, ``dict[str, X]`` and nested dataclasses. Only lossless
  conversions are made: an integer where a float is wanted, a whole float where an integer is wanted, and
  text that spells a value of the wanted type (``"7"`` for an ``int``, ``"2e-5"`` for a ``float``) as a
  command line gives it. A single text where a list of texts is wanted is one item, or, when it holds
  commas, split at them (``subjects=anatomy, virology``; items stripped).
* **Booleans are only ``true`` and ``false``.** ``yes``, ``no``, ``on``, ``off``, ``1`` and ``0`` are
  refused for a boolean field (YAML 1.1 reads ``yes`` as true and ``no`` as false, which turns a country
  code or an answer into a boolean by surprise); in a text field they stay text.
* **YAML is read with YAML 1.2's scalar rules**: ``true``/``false`` are the only booleans, ``2e-5`` is a
  number (YAML 1.1 reads it as text), ``0777`` is the integer 777 (not octal) and ``1:20`` is text (not 80).
* **Every error names where the value came from and the key**: ``configs/run.yaml:12: lora.r: expected
  an integer, got 'sixteen'`` or ``override: max_length: ...``.

:func:`dump` / :func:`write_resolved` write the resolved config (every field, defaults included) as YAML,
which :func:`load` reads back to an equal object: the copy kept next to an output says what produced it.

No torch here (``camels.core`` stays light); PyYAML is imported when a file or override is parsed.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from camels.core.errors import ConfigError

__all__ = [
    "Read", "Where", "build", "coerce", "dump", "field_help", "load", "override_pairs", "parse_overrides",
    "parse_value", "read_with_overrides", "read_yaml", "replace", "to_dict", "write_resolved",
]

OVERRIDE = "override"  # the origin named in errors about key=value overrides
BOOL_HINT = "expected true or false (booleans are only true and false; yes/no/on/off/1/0 are not accepted)"

# -- YAML with 1.2 scalar rules ---------------------------------------------------------------------------

_LOADER: Any = None
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?\.(?:inf|Inf|INF)$"
                    r"|^\.(?:nan|NaN|NAN)$")


def _loader() -> Any:
    """A ``yaml.SafeLoader`` subclass whose implicit scalars follow YAML 1.2's core schema (see above)."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class StrictLoader(yaml.SafeLoader):
            pass

        replaced = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
        StrictLoader.yaml_implicit_resolvers = {
            k: [(tag, rx) for tag, rx in v if tag not in replaced]
            for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
        }
        StrictLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf"))
        StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
        StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+.0123456789"))
        StrictLoader.add_constructor("tag:yaml.org,2002:int",
                                     lambda loader, node: int(loader.construct_scalar(node), 10))
        _LOADER = StrictLoader
    return _LOADER


def read_yaml(path: str | Path) -> tuple[Any, dict[str, int]]:
    """Parse a YAML file; return the data and the 1-based line of every (dotted) key, for error messages."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from e
    try:
        data = yaml.load(text, Loader=_loader())  # noqa: S506 (a SafeLoader subclass)
        node = yaml.compose(text, Loader=_loader())  # noqa: S506
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    lines: dict[str, int] = {}
    _key_lines(node, "", lines)
    return data, lines


def _key_lines(node: Any, prefix: str, out: dict[str, int]) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                key = f"{prefix}{k.value}"
                out.setdefault(key, k.start_mark.line + 1)
                _key_lines(v, key + ".", out)


def parse_value(text: str) -> Any:
    """The value of a ``key=value`` override: a YAML scalar or flow collection (``[a, b]``), else the text."""
    import yaml

    if not text.strip():
        return ""
    try:
        return yaml.load(text, Loader=_loader())  # noqa: S506
    except yaml.YAMLError:
        return text


def parse_overrides(items: Sequence[str]) -> list[tuple[str, Any]]:
    """``["lora.r=16", "packing=false"]`` -> ``[("lora.r", 16), ("packing", False)]``."""
    out = []
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{OVERRIDE} {item!r}: expected key=value")
        out.append((key.strip(), parse_value(raw)))
    return out


def override_pairs(overrides: Sequence[str] | Mapping[str, Any]) -> list[tuple[str, Any]]:
    """``key=value`` texts (:func:`parse_overrides`) or a mapping of dotted keys to values, as pairs."""
    return list(overrides.items()) if isinstance(overrides, Mapping) else parse_overrides(overrides)


# -- building -----------------------------------------------------------------------------------------------


class Where:
    """Names the origin of a key in errors: the file and line it was read from, or the override."""

    def __init__(self, origin: str = "", lines: Mapping[str, int] | None = None,
                 overridden: set[str] | None = None) -> None:
        self.origin = origin
        self.lines = lines or {}
        self.overridden = overridden or set()

    def __call__(self, key: str) -> str:
        parts = key.replace("[", ".[").split(".")
        for n in range(len(parts), 0, -1):  # the nearest enclosing key that was overridden or has a line
            k = ".".join(parts[:n]).replace(".[", "[")
            if k in self.overridden:
                return f"{OVERRIDE}: "
            if k in self.lines:
                return f"{self.origin}:{self.lines[k]}: "
        return f"{self.origin}: " if self.origin else ""


@dataclass
class Read:
    """A config as read, before it is built: its plain mapping with the overrides applied, and where each
    key came from (``origin``: the file; ``lines``: the line of each dotted key; ``overridden``: the keys an
    override set), which is what an error names."""

    data: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    lines: dict[str, int] = field(default_factory=dict)
    overridden: set[str] = field(default_factory=set)

    def override(self, overrides: Sequence[str] | Mapping[str, Any] = (), **values: Any) -> Read:
        """Apply ``key=value`` texts (or a mapping of dotted keys to values), then keyword ``values``."""
        for key, value in [*override_pairs(overrides), *values.items()]:
            _set_path(self.data, key, value)
            self.overridden.add(key)
        return self

    @property
    def where(self) -> Where:
        """Names a key's origin in an error: ``file:line: ``, ``override: `` or ``file: ``."""
        return Where(self.origin, self.lines, self.overridden)

    def section(self, key: str, *, origin: str | None = None) -> Read:
        """The section ``key`` as a config of its own (a copy): its lines and overridden keys without the
        ``key.`` prefix; ``origin``: another name for where it came from."""
        n = len(key) + 1
        value = self.data.get(key)
        return Read(_plain(value) if isinstance(value, dict) else {}, self.origin if origin is None else origin,
                    {k[n:]: v for k, v in self.lines.items() if k.startswith(key + ".")},
                    {k[n:] for k in self.overridden if k.startswith(key + ".")})

    def build(self, cls: type) -> Any:
        """The dataclass ``cls`` from this mapping (:func:`build`; errors name file, line and key)."""
        return build(cls, self.data, origin=self.origin, lines=self.lines, overridden=self.overridden)


def read_with_overrides(path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = (),
                        **values: Any) -> Read:
    """A YAML file's top-level mapping (``{}`` for an empty file or no ``path``) with ``key=value``
    ``overrides`` (or a mapping of dotted keys to values), then keyword ``values``, applied."""
    read = Read()
    if path is not None:
        data, read.lines = read_yaml(path)
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
        read.data, read.origin = _plain(data), str(path)
    return read.override(overrides, **values)


def load(cls: type, path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = (),
         **values: Any) -> Any:
    """Build ``cls`` from a YAML file (optional), then ``key=value`` overrides, then keyword ``values``.

    ``overrides`` are ``"key=value"`` texts (the command line) or a mapping of dotted keys to values.
    """
    return read_with_overrides(path, overrides, **values).build(cls)


def build(cls: type, data: Mapping[str, Any], *, origin: str = "", lines: Mapping[str, int] | None = None,
          overridden: set[str] | None = None) -> Any:
    """Build the dataclass ``cls`` from ``data``; errors name ``origin`` (a file, ``task mmlu``...) and key.

    A :class:`ConfigError` raised by the class itself (its ``__post_init__`` checks) gets the origin too.
    """
    where = Where(origin, lines, overridden)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where('')}expected a mapping of keys to values, got {type(data).__name__}")
    return _build(cls, data, "", where)


def replace(instance: Any, changes: Mapping[str, Any], *, origin: str = "") -> Any:
    """A copy of the dataclass ``instance`` with ``changes`` applied, typed and checked like :func:`build`."""
    where = Where(origin)
    hints = typing.get_type_hints(type(instance))
    names = {f.name for f in dataclasses.fields(instance)}
    kwargs = {}
    for key, value in changes.items():
        if key not in names:
            raise ConfigError(f"{where(key)}{_unknown(key, names, '', type(instance))}")
        kwargs[key] = coerce(key, hints[key], value, where)
    try:
        return dataclasses.replace(instance, **kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where('')}{e}") from None


def _unknown(key: str, names: Sequence[str] | set[str], prefix: str, cls: type) -> str:
    close = difflib.get_close_matches(key, sorted(names), n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"known: {', '.join(sorted(names))}"
    return f"{prefix}{key}: unknown key ({hint})"


def _build(cls: type, data: Mapping[str, Any], prefix: str, where: Callable[[str], str]) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    for k in data:
        if k not in fields:
            raise ConfigError(f"{where(prefix + str(k))}{_unknown(str(k), set(fields), prefix, cls)}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = coerce(prefix + name, hints[name], data[name], where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            help_ = f.metadata.get("help", "")
            raise ConfigError(f"{where(prefix.rstrip('.'))}{prefix}{name}: required key is missing"
                              + (f" ({help_})" if help_ else ""))
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where(prefix.rstrip('.'))}{e}") from None


def coerce(key: str, tp: Any, value: Any, where: Callable[[str], str] = lambda _: "") -> Any:
    """Check ``value`` against the annotation ``tp``; convert only the lossless cases (module docstring).

    Errors name ``where(key)`` (file and line, see :class:`Where`) and ``key``; besides the fields of a
    dataclass, this checks values that are not fields of one (a backend's options)."""

    def fail(expected: str) -> ConfigError:
        return ConfigError(f"{where(key)}{key}: {expected}, got {_show(value)}")

    origin = get_origin(tp)
    if tp is Any or tp is object:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value in ("null", "~") and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # ``X | None``: the error of X (null was allowed above)
            return coerce(key, real[0], value, where)
        # Exact type matches first, so ``int | str`` keeps 3 an int and "all" a string.
        for a in args:
            if a is not type(None) and _exact(a, value):
                return coerce(key, a, value, where)
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(key, a, value, where)
            except ConfigError:
                continue
        raise fail(f"expected {type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        if value in allowed and not (isinstance(value, bool) and True in allowed):
            return value
        raise fail(f"expected one of {', '.join(repr(a) for a in allowed)}")
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        args = get_args(tp)
        item = args[0] if args else Any
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            item = Any  # fixed-length tuples: not used by camels' configs, items kept as given
        if isinstance(value, str) and item is str:
            value = [v.strip() for v in value.split(",") if v.strip()] if "," in value else [value]
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool) and item in (int, float):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise fail("expected a list")
        out = [coerce(f"{key}[{i}]", item, v, where) for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin in (dict, Mapping) or tp is dict:
        args = get_args(tp)
        vt = args[1] if len(args) == 2 else Any
        if not isinstance(value, Mapping):
            raise fail("expected a mapping")
        return {str(k): coerce(f"{key}.{k}", vt, {} if v is None and dataclasses.is_dataclass(vt) else v, where)
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise fail("expected a section (a mapping of keys to values)")
        return _build(tp, value, f"{key}.", where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise fail(BOOL_HINT)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT.match(value.strip()):
            return int(value.strip(), 10)
        raise fail("expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value.strip())
        raise fail("expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, Path):
            return str(value)
        raise fail("expected a string")
    if tp is Path:
        if isinstance(value, (str, Path)):
            return Path(value)
        raise fail("expected a path")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise fail(f"expected {type_name(tp)}")
    return value


def _exact(tp: Any, value: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, float)
    if tp is str:
        return isinstance(value, str)
    o = get_origin(tp)
    if o in (list, tuple) or tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if o is dict or tp is dict or dataclasses.is_dataclass(tp):
        return isinstance(value, Mapping)
    return False


def _show(value: Any) -> str:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return repr(value)
    return f"{type(value).__name__} {value!r}"


def type_name(tp: Any) -> str:
    """A readable name of an annotation (``int | null``, ``list[str]``) for errors and docs."""
    if tp is type(None):
        return "null"
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in get_args(tp))
    if origin in (list, tuple):
        args = [a for a in get_args(tp) if a is not Ellipsis]
        return f"{origin.__name__}[{type_name(args[0])}]" if args else origin.__name__
    if origin is dict:
        k, v = get_args(tp)
        return f"dict[{type_name(k)}, {type_name(v)}]"
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


# -- paths in nested mappings -------------------------------------------------------------------------------


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for p in parts[:-1]:
        nxt = node.get(p)
        if nxt is None:
            nxt = node[p] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{OVERRIDE}: {key}: {p} is not a section")
        node = nxt
    node[parts[-1]] = value


def _plain(d: Any) -> Any:
    if isinstance(d, Mapping):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, list):
        return [_plain(v) for v in d]
    return d


# -- writing ----------------------------------------------------------------------------------------------


def to_dict(instance: Any) -> dict[str, Any]:
    """Every field of a (nested) dataclass as plain YAML/JSON types (tuples as lists, paths as text)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, Mapping):
            return {str(k): plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return plain(instance)


def dump(instance_or_dict: Any) -> str:
    """The resolved config as YAML (readable back by :func:`load` into an equal object)."""
    import yaml

    d = instance_or_dict if isinstance(instance_or_dict, Mapping) else to_dict(instance_or_dict)
    return yaml.safe_dump(d, sort_keys=False, allow_unicode=True)


def write_resolved(instance: Any, path: str | Path, name: str = "config.resolved.yaml") -> Path:
    """Write the resolved config atomically: into ``path/name`` for a folder, else to ``path``."""
    from camels.core.io import atomic_write

    path = Path(path)
    if path.is_dir() or path.suffix == "":
        path = path / name
    with atomic_write(path) as f:
        f.write(dump(instance))
    return path


def field_help(cls: type, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(key, type, default, help)`` for every field, nested ones as ``lora.r``; feeds docs and CLI help."""
    rows = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            rows.extend(field_help(tp, prefix=f"{prefix}{f.name}."))
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = "(required)"
        rows.append((prefix + f.name, type_name(tp), default, f.metadata.get("help", "")))
    return rows
