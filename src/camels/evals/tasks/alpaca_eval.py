"""AlpacaEval (Li et al. 2023; Dubois et al. 2024): 805 instructions, greedy answers, a pairwise judge against
a reference model's answers (SPEC §4). Task ``alpaca_eval``.

Items: the 805 instructions, read from a reference's ``model_outputs.json`` in alpaca_eval's layout
(``--data`` holding ``results/<reference>/model_outputs.json``, e.g. ``text_davinci_003`` for AlpacaEval 1,
``gpt4_1106_preview`` for AlpacaEval 2), or, without ``--data``, the ``tatsu-lab/alpaca_eval`` eval split
from the hub (whose outputs are text-davinci-003's). ``reference`` may also be a path to any
``model_outputs.json``. Ids are ``alpaca_eval:<0-based row>``.

Model phase: the instruction as the user turn, greedy, ``max_tokens`` new tokens (8192, open-instruct's
setting; the backend stops at the model's context), no stop string.

Scoring phase (``judge_pair`` requests, answered by a :class:`camels.judge.pairwise.PairwiseJudge` built
from the ``judge_*`` options): which answer the judge sees first is drawn from a seeded hash of the item
id (:func:`camels.judge.pairwise.model_shown_first`; ``position=alpaca_eval`` draws it as alpaca_eval 0.3.1,
the version the study pinned, does: :func:`alpaca_eval_model_first`), recorded in the scores, and
un-swapped before aggregation; with ``both_orders`` each pair is judged in both orders, the item's preference is the mean of
its parsed verdicts, and ``self_consistency`` is the share of items whose two parsed verdicts name the same
winner. A verdict the judge never made parseable is ``unparsed``: counted, in no rate.

Metrics (:mod:`camels.judge.winrate`, alpaca_eval's definitions): ``win_rate`` (percent, ties as half),
``standard_error``, ``discrete_win_rate``, ``n_wins``, ``n_losses``, ``n_ties``, ``n_unparsed``; the judge
identity (one only: verdicts of two judges are refused); tokens and cost of the kept annotations; the
length-controlled win rate (:mod:`camels.judge.length_controlled`) when ``lc_data`` gives alpaca_eval's
per-instruction data, else None with a note saying so.

Files in alpaca_eval's formats: a run folder (``camels eval``, ``camels rescore``, ``camels judge run``) also
holds ``model_outputs.json`` (instruction, output, generator, dataset) and ``annotations.json``
(:func:`alpaca_eval_files`), so alpaca_eval's tools can read or judge them; ``generator`` is the
``generator`` option or the last part of the model's name.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from camels.core.errors import ConfigError
from camels.core.io import sha256_file
from camels.core.requests import GenerateRequest, Request, Result
from camels.evals.scoring import register_scorer
from camels.evals.task import (
    PLAIN,
    Item,
    RequestContext,
    Task,
    TaskData,
    generated_text,
    hub_dataset,
    hub_source,
    register_task,
)
from camels.judge.annotations import read_model_outputs
from camels.judge.identity import JudgeIdentity, require_one_identity
from camels.judge.kinds import JudgePairRequest, PairVerdict
from camels.judge.length_controlled import length_controlled_win_rate
from camels.judge.pairwise import model_shown_first, unswap
from camels.judge.winrate import TIE, win_rate_metrics


@dataclass(frozen=True)
class AlpacaEvalConfig:
    reference: str = field(default="text_davinci_003", metadata={
        "help": "reference outputs: a folder under <data>/results/ (text_davinci_003: AlpacaEval 1, "
                "gpt4_1106_preview: AlpacaEval 2) or a model_outputs.json path"})
    max_tokens: int = field(default=8192, metadata={"help": "new tokens per answer (greedy)"})
    generator: str = field(default="", metadata={
        "help": "the judged model's name in alpaca_eval's files (default: the run's model name)"})
    seed: int = field(default=0, metadata={"help": "seed of the A/B position drawn per item id"})
    position: str = field(default="hash", metadata={
        "help": "how the A/B position is drawn: hash (of seed and item id) or alpaca_eval (from the instruction "
                "and seed, as alpaca_eval 0.3.1, the study's version)"})
    both_orders: bool = field(default=False, metadata={
        "help": "judge every pair in both orders and report the judge's self-consistency"})
    judge_prompt: str = field(default="alpaca_eval_gpt4", metadata={
        "help": "judge prompt name (configs/judges/) or YAML path"})
    judge_model: str = field(default="", metadata={"help": "judge model (default: the prompt's, gpt-4-0314)"})
    judge_backend: str = field(default="", metadata={"help": "judge backend: api (default), hf or vllm"})
    judge_base_url: str = field(default="", metadata={"help": "OpenAI-compatible endpoint of an api judge"})
    judge_options: dict[str, str] = field(default_factory=dict, metadata={
        "help": "more judge backend options (max_concurrency, timeout, api_key_env ...)"})
    judge_max_attempts: int = field(default=3, metadata={
        "help": "times the judge is asked while its answer cannot be parsed"})
    judge_ledger: str = field(default="", metadata={"help": "file of the judge's per-call cost ledger"})
    judge_max_cost: float | None = field(default=None, metadata={
        "help": "stop judging (cleanly, finished annotations kept) once this many USD are spent"})
    lc_data: str = field(default="", metadata={
        "help": "alpaca_eval's df_gamed.csv (path, or 'hub') for the length-controlled win rate"})


def _reference_file(cfg: AlpacaEvalConfig, root: Path) -> Path:
    ref = Path(cfg.reference).expanduser()
    if ref.is_file():
        return ref
    for candidate in (root / "results" / cfg.reference / "model_outputs.json",
                      root / cfg.reference / "model_outputs.json"):
        if candidate.is_file():
            return candidate
    if root.is_file() and root.name.endswith(".json"):
        return root
    raise ConfigError(f"alpaca_eval: no reference outputs {cfg.reference!r} under {root} (expected "
                      f"results/{cfg.reference}/model_outputs.json, or set reference to a model_outputs.json)")


def _item(index: int, row: Mapping[str, Any], prefix: str = "alpaca_eval") -> Item:
    return Item(f"{prefix}:{index}", {"instruction": row["instruction"], "dataset": row.get("dataset", ""),
                                      "reference_output": row["output"],
                                      "reference_generator": row.get("generator", "reference")})


POSITIONS = ("hash", "alpaca_eval")


def alpaca_eval_model_first(instruction: str, seed: int = 0) -> bool:
    """Whether alpaca_eval 0.3.1 shows the model's output first: its pairwise annotator puts the reference
    first and switches the two with ``random.Random("is_switched_outputs" + instruction + str(seed))``
    choosing among ``[False, True]`` (``choices``, k=1), the annotator's seed being 0 by default."""
    return random.Random("is_switched_outputs" + instruction + str(seed)).choices([False, True], k=1)[0]


@register_task
class AlpacaEval(Task):
    name = "alpaca_eval"
    version = "1"
    Config = AlpacaEvalConfig
    primary_metric = "win_rate"
    data_dir = "alpaca_eval"
    scoring_kinds = ("judge_pair",)

    def load(self, data_path: str | Path | None = None) -> TaskData:
        if self.config.position not in POSITIONS:  # said before any model time is spent
            raise ConfigError(f"alpaca_eval: position must be one of {', '.join(POSITIONS)}, "
                              f"got {self.config.position!r}")
        if data_path is None and not Path(self.config.reference).expanduser().is_file():
            ds = hub_dataset("tatsu-lab/alpaca_eval", "alpaca_eval", "eval")
            key, fp = hub_source(ds, "tatsu-lab/alpaca_eval", "alpaca_eval", "eval")
            return TaskData(items=[_item(i, dict(r)) for i, r in enumerate(ds)], sources={key: fp})
        path = _reference_file(self.config, Path(data_path or "."))
        rows = read_model_outputs(path)
        return TaskData(items=[_item(i, r) for i, r in enumerate(rows)],
                        sources={str(path.resolve()): sha256_file(path)})

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Request]:
        return [GenerateRequest(messages=[("user", item.data["instruction"])], max_tokens=self.config.max_tokens)]

    # -- scoring phase ---------------------------------------------------------------------------------
    def model_first(self, item: Item) -> bool:
        if self.config.position == "alpaca_eval":
            return alpaca_eval_model_first(item.data["instruction"], self.config.seed)
        if self.config.position != "hash":
            raise ConfigError(f"alpaca_eval: position must be one of {', '.join(POSITIONS)}, "
                              f"got {self.config.position!r}")
        return model_shown_first(item.id, self.config.seed)

    def scoring_requests(self, item: Item, results: Sequence[Result]) -> list[Any]:
        out, ref = generated_text(results, self.label), item.data["reference_output"]
        inst = item.data["instruction"]
        shown = JudgePairRequest(inst, out, ref) if self.model_first(item) else JudgePairRequest(inst, ref, out)
        if not self.config.both_orders:
            return [shown]
        return [shown, JudgePairRequest(inst, shown.output_2, shown.output_1)]

    def score(self, item: Item, results: Sequence[Result], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        if len(verdicts) != (2 if self.config.both_orders else 1):
            raise ValueError(f"alpaca_eval {item.id}: expected {2 if self.config.both_orders else 1} judge "
                             f"verdict(s), got {len(verdicts)}")
        for v in verdicts:
            if not isinstance(v, PairVerdict):
                raise TypeError(f"alpaca_eval scores judge verdicts, not {type(v).__name__}")
        first = self.model_first(item)
        prefs = [unswap(verdicts[0].preference, first)]
        if self.config.both_orders:
            prefs.append(unswap(verdicts[1].preference, not first))
        parsed = [p for p in prefs if p is not None]
        out = generated_text(results, self.label)
        scores: dict[str, Any] = {
            "preference": sum(parsed) / len(parsed) if parsed else None,
            "model_first": first,
            "judge": verdicts[0].judge,
            "attempts": sum(v.attempts for v in verdicts),
            "prompt_tokens": sum(v.prompt_tokens for v in verdicts),
            "completion_tokens": sum(v.completion_tokens for v in verdicts),
            "cost_usd": sum(v.cost_usd for v in verdicts),
            "output_chars": len(out),
            "reference_chars": len(item.data["reference_output"]),
        }
        if self.config.both_orders:
            scores["preferences"] = prefs
            scores["consistent"] = (_winner(prefs[0]) == _winner(prefs[1])) if len(parsed) == 2 else None
        return scores

    def extra_files(self, predictions: Sequence[Any], model: str) -> dict[str, Any]:
        """``model_outputs.json`` and ``annotations.json`` in alpaca_eval's formats (see :func:`alpaca_eval_files`)."""
        outputs, annotations = alpaca_eval_files(self, predictions, self.config.generator or Path(model).name or "model")
        return {"model_outputs.json": outputs, "annotations.json": annotations}

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        identity = require_one_identity([JudgeIdentity.from_dict(s["judge"]) for s in scores], self.label)
        out: dict[str, Any] = win_rate_metrics([s["preference"] for s in scores])
        out["judge"] = identity.to_dict()
        out["position_model_first"] = sum(bool(s["model_first"]) for s in scores)
        if self.config.both_orders:
            both = [s["consistent"] for s in scores if s["consistent"] is not None]
            out["self_consistency"] = sum(both) / len(both) if both else None
            out["n_both_parsed"] = len(both)
        out["judge_cost"] = {k: sum(s[k] for s in scores) for k in ("attempts", "prompt_tokens", "completion_tokens")}
        out["judge_cost"]["cost_usd"] = round(sum(s["cost_usd"] for s in scores), 8)
        out["avg_output_chars"] = sum(s["output_chars"] for s in scores) / len(scores)
        out.update(length_controlled_win_rate(
            [s["preference"] for s in scores], [s["reference_chars"] for s in scores],
            [s["output_chars"] for s in scores], [int(it.id.rsplit(":", 1)[1]) for it in items], self.config.lc_data))
        return out


def _winner(p: float | None) -> int | None:
    if p is None:
        return None
    return 0 if p == TIE else (1 if p > TIE else -1)


def alpaca_eval_files(task: AlpacaEval, predictions: Sequence[Any], generator: str
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``model_outputs.json`` and ``annotations.json`` rows (alpaca_eval's formats) of a run's predictions.

    An annotation's ``preference`` is the un-swapped verdict (2: the model's answer is better); camels adds
    ``id``, ``judge`` (the identity), ``model_first``, the judge's raw answers and the token counts.
    """
    outputs, annotations = [], []
    for p in predictions:
        d, s = p.item, p.scores
        output = p.output or ""
        outputs.append({"instruction": d["instruction"], "output": output, "generator": generator,
                        "dataset": d.get("dataset", "")})
        if not p.verdicts:
            continue
        judge = JudgeIdentity.from_dict(s["judge"])
        annotations.append({
            "instruction": d["instruction"], "output_1": d["reference_output"],
            "generator_1": d["reference_generator"], "dataset": d.get("dataset", ""), "output_2": output,
            "generator_2": generator, "annotator": judge.annotator, "preference": s["preference"],
            "price_per_example": s["cost_usd"], "id": p.id, "judge": s["judge"], "model_first": s["model_first"],
            "raw_completions": [list(v.raw) for v in p.verdicts], "attempts": s["attempts"],
            "prompt_tokens": s["prompt_tokens"], "completion_tokens": s["completion_tokens"],
        })
    return outputs, annotations


def _pair_scorer(task: Any) -> Any:
    from camels.judge.build import pairwise_judge

    c = task.config
    return pairwise_judge(c.judge_prompt, model=c.judge_model, backend=c.judge_backend, base_url=c.judge_base_url,
                          options=c.judge_options, max_attempts=c.judge_max_attempts, ledger=c.judge_ledger,
                          max_cost=c.judge_max_cost)


register_scorer("judge_pair", _pair_scorer)
