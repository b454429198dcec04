"""The options a built-in backend takes, known without importing it: ``--backend-option`` and a pipeline's
``eval.backend_options`` are checked (unknown name, wrong type: one line naming it) before any cache file is
made or model loaded, and on a machine without torch or vLLM as well."""

from __future__ import annotations

import ast
import difflib
import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from camels.backends import BACKENDS
from camels.core import config
from camels.core.errors import ConfigError


def backend_parameters(backend: str) -> dict[str, Any] | None:
    """The keyword options a built-in backend's class takes (name -> annotation, ``Any`` when it is not a
    plain type), read from its module's source without importing it (no torch or vLLM needed to check a
    config); None when the options are open (``**options``) or the backend is not a built-in one."""
    if backend not in BACKENDS:
        return None
    module_name, class_name = BACKENDS[backend]
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None or not Path(spec.origin).is_file():
        return None
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    init = next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None) if cls else None
    if init is None or init.args.kwarg is not None:
        return None
    plain = {"int": int, "float": float, "str": str, "bool": bool, "None": None, "Any": Any}
    out: dict[str, Any] = {}
    for arg in [*init.args.args[2:], *init.args.kwonlyargs]:  # past self and the model
        try:
            tp = eval(ast.unparse(arg.annotation), {"__builtins__": {}}, plain) if arg.annotation else Any
        except Exception:  # a type of another package (torch.dtype ...): the backend checks it
            tp = Any
        out[arg.arg] = tp if tp is not None else Any
    return out


def coerce_backend_options(backend: str, options: Mapping[str, Any], *, label: Callable[[str], str],
                           where: Callable[[str], str] = lambda _: "") -> dict[str, Any]:
    """``options`` checked against :func:`backend_parameters` (lossless conversions only); an unknown name or
    a wrong type is a :class:`ConfigError` naming ``label(key)`` after ``where(label(key))`` (file and line).
    Options of a backend that takes any (or of one of your own) are returned as they are."""
    params = backend_parameters(backend)
    if params is None:
        return dict(options)
    names = set(params)
    out = {}
    for key, value in options.items():
        full = label(key)
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(sorted(names))}"
            raise ConfigError(f"{where(full)}{full}: not an option of backend {backend} ({hint})")
        out[key] = config.coerce(full, params[key], value, where)
    return out
