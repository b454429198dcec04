"""Model backends: batches of typed requests in, results out, in order. A backend never knows a task.

:func:`load_backend` builds one by name, importing its module only then (torch, transformers, vllm and
HTTP clients stay out of ``camels --help``). Every backend class is constructed as
``Class(model, **options)`` and implements :class:`camels.backends.base.Backend`. Two optional members
let tasks fit prompts to the model without tokenizing themselves:

* ``count_prompt_tokens(request) -> int``: tokens of the request's rendered prompt (BOS included); when
  absent, the runner uses ``len(encode(prompt_text(request)))`` if the backend has those two methods;
* ``max_length: int | None``: the model's context length.

Tasks learn whether the model is a chat model from ``info.chat_format``: kind ``"plain"`` means raw text
continuation; any other kind, or an empty chat format (an API chat endpoint whose server applies its own
template), a chat model. It decides where a task puts answer prefixes and which stops it sets.
"""

from __future__ import annotations

import importlib
from typing import Any

from camels.core.errors import ConfigError

# name -> (module, class); the module is imported only when that backend is asked for.
BACKENDS: dict[str, tuple[str, str]] = {
    "hf": ("camels.backends.hf", "HFBackend"),
    "vllm": ("camels.backends.vllm", "VLLMBackend"),
    "api": ("camels.backends.api", "APIBackend"),
}


def load_backend(name: str, model: str, **options: Any) -> Any:
    """Build the backend ``name`` for ``model`` (a path or hub name; for ``api``, the served model name).

    Options are passed to the backend class (``batch_size``, ``device``, ``base_url`` ...). A name of
    the form ``package.module:Class`` loads a backend of your own that implements the same protocol.
    """
    if ":" in name:
        module_name, class_name = name.split(":", 1)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            raise ConfigError(f"backend {name!r}: cannot import {module_name!r} ({e})") from None
        if not hasattr(module, class_name):
            raise ConfigError(f"backend {name!r}: {module_name} has no {class_name}")
        return getattr(module, class_name)(model, **options)
    if name not in BACKENDS:
        raise ConfigError(f"unknown backend {name!r} (known: {', '.join(sorted(BACKENDS))})")
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            raise ConfigError(f"backend {name!r} is not available in this version of camels") from None
        raise ConfigError(f"backend {name!r} needs the package {e.name!r}: install it "
                          f"(e.g. pip install 'camels-instruct[{'vllm' if name == 'vllm' else 'eval'}]')") from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"backend module {module_name} has no {class_name}")
    return cls(model, **options)
