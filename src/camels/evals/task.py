"""The Task protocol: benchmark items -> typed requests; results -> per-item scores -> aggregate metrics.

A task never calls a model. The runner (:mod:`camels.evals.runner`) asks it for requests, has a backend
answer them, and hands the results back for scoring. A task is four pure steps:

1. :meth:`Task.load` reads the benchmark's raw files from a local folder (``--data PATH``) or, with no
   path, from the Hugging Face hub through ``datasets`` (imported lazily). It returns :class:`TaskData`:
   the items and the sha256 of every file they came from (for the run manifest).
2. :meth:`Task.requests` builds the requests for one item. It receives a :class:`RequestContext` from the
   runner saying whether the model is a chat model (its chat format is not ``plain``) and, when the
   backend can count tokens, how long a rendered prompt is. That is how a task adapts its prompt (MMLU's
   ``"The answer is:"`` prefix for chat models, GSM8K's stop strings for plain prompts) and drops few-shot
   examples until a prompt fits, without ever tokenizing with the model itself.
3. :meth:`Task.score` turns one item's results into a dict of per-item scores.
4. :meth:`Task.aggregate` turns all per-item scores into the metrics dict of ``metrics.json``.

A task whose score needs something besides the model (run the program it wrote, classify or judge its
answer) names those kinds in ``scoring_kinds`` and returns *scoring requests* from
:meth:`Task.scoring_requests`, after seeing the model's results; the runner has them answered by scorers
(:mod:`camels.evals.scoring`) through the same request cache, and hands the answers to :meth:`Task.score`
as ``verdicts``. The task still calls nothing itself, and ``camels rescore`` reuses the stored verdicts.

Item ids are stable and documented: the dataset's own id when it has one (HumanEval's ``task_id``), else
``<split or file stem>:<0-based row index>`` over the data rows of the raw file (header lines excluded),
e.g. ``abstract_algebra_test:0`` or ``test:1318``. Sampling (GSM8K's 200 questions) picks items; it never
renumbers them.

Tasks are registered by name (:func:`register_task`); named setups (``mmlu_5shot``, ``gsm8k_direct`` ...)
are presets: a task name plus config overrides (:func:`register_preset`). :func:`get_task` builds either.
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from camels.core.config import replace as replace_config
from camels.core.errors import ConfigError
from camels.core.requests import GenerateRequest, Generation, Request, Result


@dataclass(frozen=True, slots=True)
class Item:
    """One benchmark item: a stable ``id`` and its raw fields (JSON-serialisable; stored in predictions).

    ``shared`` holds what many items share and :meth:`Task.requests` needs besides the item's own fields
    (MMLU's exemplars of the subject), by reference: it travels with the item, so building requests needs
    no state on the task instance, and it is not stored in predictions nor part of item equality.
    """

    id: str
    data: dict[str, Any]
    shared: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(slots=True)
class TaskData:
    """What :meth:`Task.load` returns: the items, and where they came from.

    ``sources`` maps each file read (absolute path) to its sha256, or a hub dataset id to its revision or
    fingerprint. ``skipped`` counts rows left out, by reason (nothing is dropped silently).
    ``unsampled`` holds the ids of the data's items that the task's sample left out (``camels score``
    tells such ids apart from ids that are not in the data at all).
    """

    items: list[Item]
    sources: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    unsampled: list[str] = field(default_factory=list)


def sample_items(items: list[Item], n: int, seed: int) -> tuple[list[Item], list[str]]:
    """``random.Random(seed).sample(items, n)`` (the study's draw, in the sampled order) when ``0 < n <
    len(items)``, else all items; with the ids left out."""
    if not n or n >= len(items):
        return items, []
    import random

    picked = random.Random(seed).sample(items, n)
    chosen = {it.id for it in picked}
    return picked, [it.id for it in items if it.id not in chosen]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a task may know about the model when it builds requests.

    * ``chat``: the backend renders prompts with a chat format (not ``plain``).
    * ``count_tokens``: the number of tokens of a request's rendered prompt (BOS included), when the
      backend offers it (``Backend.count_prompt_tokens``); ``None`` for backends that cannot tokenize.
    * ``max_length``: the model's context length, when known.
    """

    chat: bool = False
    count_tokens: Callable[[Request], int] | None = None
    max_length: int | None = None

    def fits(self, request: Request, limit: int | None = None, reserve: int = 1) -> bool:
        """Whether the rendered prompt plus ``reserve`` new tokens fits in ``limit`` and the model context.

        Always true when the backend cannot count tokens (an API model truncates or refuses on its side).
        """
        if self.count_tokens is None:
            return True
        bounds = [b for b in (limit, self.max_length) if b is not None]
        if not bounds:
            return True
        return self.count_tokens(request) + reserve <= min(bounds)


PLAIN = RequestContext()


def cued_generation(text: str, cue: str, ctx: RequestContext, *, max_tokens: int, plain_stop: Sequence[str],
                    chat_stop: Sequence[str]) -> GenerateRequest:
    """A greedy generation request for a few-shot prompt whose answer follows a cue (``"Answer:"``, ``"A:"``).

    For chat models the cue is the assistant prefix, so the model answers in its own turn and ends it
    itself (``chat_stop`` is a safety stop); for plain prompts the cue ends the user text after a newline
    and ``plain_stop`` ends the answer.
    """
    if ctx.chat:
        return GenerateRequest(messages=[("user", text)], assistant_prefix=cue, max_tokens=max_tokens,
                               stop=tuple(chat_stop))
    return GenerateRequest(messages=[("user", f"{text}\n{cue}")], max_tokens=max_tokens, stop=tuple(plain_stop))


def generated_text(results: Sequence[Result], task: str) -> str:
    """The first generated text of an item's single generation result ("" when the model wrote nothing)."""
    res = results[0]
    if not isinstance(res, Generation):
        raise TypeError(f"{task} scores generations, not {type(res).__name__}")
    return res.texts[0] if res.texts else ""


class Task(ABC):
    """Base class of the benchmarks. Subclasses set the class attributes and implement the four steps.

    ``Config`` is a dataclass whose fields have defaults and a ``help`` in their metadata; the instance's
    ``config`` is what the run writes to ``config.resolved.json``.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    Config: ClassVar[type]
    primary_metric: ClassVar[str]
    # Folder name under ``--data ROOT`` where this task looks first (``ROOT/<data_dir>``).
    data_dir: ClassVar[str] = ""
    # Kinds of scoring requests this task may return from :meth:`scoring_requests` (e.g. ``("execute",)``);
    # the runner builds one scorer per kind (:mod:`camels.evals.scoring`). Empty: scored by a pure function.
    scoring_kinds: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None, *, label: str | None = None, **options: Any) -> None:
        cfg = config if config is not None else self.Config()
        self.label = label or self.name
        self.config = replace_config(cfg, options, origin=f"task {self.label}") if options else cfg

    # -- the four steps --------------------------------------------------------------------------------
    @abstractmethod
    def load(self, data_path: str | Path | None = None) -> TaskData:
        """Items from a local folder of raw benchmark files, or from the hub when ``data_path`` is None."""

    @abstractmethod
    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        """The requests that answer ``item`` (usually one)."""

    @abstractmethod
    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        """Per-item scores from the results of :meth:`requests` (same order) and the ``verdicts`` that answer
        :meth:`scoring_requests` (same order; empty for tasks scored by a pure function)."""

    @abstractmethod
    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Metrics over all scored items (``items[i]`` was scored ``scores[i]``)."""

    # -- optional hooks -----------------------------------------------------------------------------------
    def scoring_requests(self, item: Item, results: Sequence[Result]) -> list[Any]:
        """Requests to something besides the model that scoring ``item`` needs, built from the model's
        ``results`` (e.g. one ``execute`` request per generated program); their kinds must be in
        ``scoring_kinds``. Pure and deterministic: rescoring builds them again and checks they are the
        stored ones. Default: none."""
        return []

    def extra_files(self, predictions: Sequence[Any], model: str) -> dict[str, Any]:
        """Files in another tool's format that the run folder also gets, ``{file name: JSON object}``,
        written by ``run_task`` and ``rescore`` beside the predictions (AlpacaEval's ``model_outputs.json``
        and ``annotations.json``). Default: none."""
        return {}

    def output_text(self, item: Item, results: Sequence[Result]) -> str | None:
        """The readable answer stored in the prediction: the first generated text by default."""
        for r in results:
            if isinstance(r, Generation) and r.texts:
                return r.texts[0]
        return None

    def request_extra(self, item: Item, requests: Sequence[Request]) -> dict[str, Any]:
        """Facts about the requests worth keeping in the prediction's ``extra`` (e.g. shots kept)."""
        return {}

    def results_from_output(self, item: Item, output: str) -> list[Result]:
        """Results standing for an answer text produced elsewhere (``camels score``): a single generation.

        Tasks scored by log-probabilities accept such text too (MMLU reads the letter from it).
        """
        return [Generation(texts=(output,), finish_reasons=("external",))]

    def resolve_data_path(self, data_path: str | Path | None) -> Path | None:
        """``ROOT/<data_dir>`` when that folder exists under the given root, else the root itself."""
        if data_path is None:
            return None
        root = Path(data_path).expanduser()
        if not root.exists():
            raise ConfigError(f"{self.label}: data path {root} does not exist")
        if self.data_dir and (root / self.data_dir).is_dir():
            return root / self.data_dir
        return root

    def config_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.label!r}, {self.config!r})"


# --- registry -------------------------------------------------------------------------------------------
TASKS: dict[str, type[Task]] = {}
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {}
BUILTIN_TASK_MODULES = (
    "camels.evals.tasks.mmlu",
    "camels.evals.tasks.gsm8k",
    "camels.evals.tasks.bbh",
    "camels.evals.tasks.tydiqa",
    "camels.evals.tasks.instruct_em",
    "camels.evals.tasks.truthfulqa",
    "camels.evals.tasks.humaneval",
    "camels.evals.tasks.alpaca_eval",
    "camels.evals.tasks.truthfulqa_gen",
    "camels.evals.tasks.toxigen",
)


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make a task available by its ``name``."""
    TASKS[cls.name] = cls
    return cls


def register_preset(name: str, task: str, **options: Any) -> None:
    """A named setup: ``task`` with config ``options`` (``mmlu_5shot`` = ``mmlu`` with ``shots=5``)."""
    PRESETS[name] = (task, options)


def _load_builtins() -> None:
    for module in BUILTIN_TASK_MODULES:
        importlib.import_module(module)


def task_names() -> list[str]:
    """Every task and preset name, sorted."""
    _load_builtins()
    return sorted(set(TASKS) | set(PRESETS))


def get_task(name: str, **options: Any) -> Task:
    """Build a task by task or preset name; ``options`` override the config (after the preset's)."""
    _load_builtins()
    if name in PRESETS:
        base, preset_options = PRESETS[name]
        return TASKS[base](label=name, **{**preset_options, **options})
    if name in TASKS:
        return TASKS[name](**options)
    raise ConfigError(f"unknown task {name!r} (known: {', '.join(task_names())})")


def find_one_file(root: Path, name: str, task: str) -> Path:
    """The one file called ``name`` anywhere below ``root``; an error naming ``task`` when there is none or
    there are several (then the user passes the folder that holds the right one)."""
    found = sorted(Path(root).rglob(name))
    if not found:
        raise ConfigError(f"{task}: no {name} under {root}")
    if len(found) > 1:
        raise ConfigError(f"{task}: several {name} under {root}: {[str(p) for p in found]}; pass one folder")
    return found[0]


def hub_dataset(path: str, name: str | None, split: str) -> Any:
    """Load a split from the Hugging Face hub (``pip install camels-instruct[hub]``); imported only here."""
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            f"reading {path} from the hub needs the 'datasets' package (pip install 'camels-instruct[hub]'); "
            "or pass --data with a local folder of the raw files"
        ) from None
    return datasets.load_dataset(path, name, split=split)


def hub_source(ds: Any, path: str, name: str | None, split: str) -> tuple[str, str]:
    """The manifest entry of a hub split: ``hf://path/name/split`` -> its ``datasets`` fingerprint."""
    key = f"hf://{path}/{name}/{split}" if name else f"hf://{path}/{split}"
    return key, str(getattr(ds, "_fingerprint", "") or "unknown")
