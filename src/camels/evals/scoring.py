"""Scorers: what answers a task's scoring requests (the second request phase).

Some scores need something besides the model: HumanEval runs the generated program, ToxiGen classifies the
text, AlpacaEval asks a judge. A task says so with ``Task.scoring_kinds`` and returns scoring requests from
``Task.scoring_requests(item, results)``; the runner answers them exactly as it answers model requests
(:func:`camels.evals.runner.answer_requests`: deduplicated, looked up in the request cache, the missing ones
sent in committed chunks), and passes the answers to ``Task.score`` as ``verdicts``.

A *scorer* is any object with

* ``info``: a :class:`camels.core.requests.BackendInfo`; its ``fingerprint`` enters the cache key of every
  request it answers, as a model's does, so it must change whenever the answers could (a new judge model, a
  new judge prompt version, another sandbox timeout);
* for each kind it serves, the method named by the request class's ``method``, taking a list of requests
  and returning a list of results of the registered result type, same length, same order.

Scorers are found by kind: ``run_task(..., scorers={"execute": my_sandbox})`` uses the given object, else
the factory registered with :func:`register_scorer` builds one from the task (``factory(task) -> scorer``,
reading e.g. the task's timeout or judge model from its config). A module that defines a kind registers the
kind (:func:`camels.core.requests.register_kind`) and its default scorer at import. When one factory serves
several of a task's kinds it is called once and the scorer is shared.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from camels.core.errors import ConfigError
from camels.core.requests import REQUEST_TYPES

#: Scoring kind -> factory(task) -> scorer.
SCORERS: dict[str, Callable[[Any], Any]] = {}


def register_scorer(kind: str, factory: Callable[[Any], Any]) -> None:
    """Make ``factory(task)`` the default scorer builder for requests of ``kind`` (replacing any earlier one)."""
    if not isinstance(kind, str) or not kind:
        raise ValueError("a scorer kind must be a non-empty string")
    SCORERS[kind] = factory


def build_scorers(task: Any, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One scorer per kind in ``task.scoring_kinds``: ``given[kind]`` when passed, else from the registered
    factory. An unknown kind or a kind without a scorer is a :class:`ConfigError` naming the task."""
    given = dict(given or {})
    out: dict[str, Any] = {}
    built: dict[int, Any] = {}
    for kind in task.scoring_kinds:
        if kind not in REQUEST_TYPES:
            raise ConfigError(f"{task.label}: scoring kind {kind!r} is not a registered request kind "
                              f"(known: {', '.join(sorted(REQUEST_TYPES))})")
        if kind in given:
            out[kind] = given[kind]
            continue
        factory = SCORERS.get(kind)
        if factory is None:
            raise ConfigError(f"{task.label}: no scorer for {kind!r} requests (pass scorers={{{kind!r}: ...}} "
                              "or import the module that registers one)")
        if id(factory) not in built:
            built[id(factory)] = factory(task)
        out[kind] = built[id(factory)]
    return out


def scorer_info(scorers: Mapping[str, Any]) -> dict[str, Any]:
    """What a run manifest records of its scorers: kind -> name, model, fingerprint, details."""
    out = {}
    for kind, scorer in scorers.items():
        info = scorer.info
        out[kind] = {"name": info.name, "model": info.model, "fingerprint": info.fingerprint,
                     "details": info.details}
    return out
