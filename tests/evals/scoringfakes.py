"""A task scored by calling something (the second request phase), with a fake "execute"-style scorer.

The ``calc`` kind asks a calculator to evaluate an arithmetic expression (a stand-in for running a program
in a sandbox). The ``arith`` task asks the model for the value of an expression, then asks the calculator
whether the model's number equals the expression, and scores the verdict. The calculator counts its calls
and, through environment variables (so a test can drive a real ``camels`` process), logs every request it
answers and kills its own process with SIGKILL before a given call.
"""

from __future__ import annotations

import ast
import operator
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from camels.core.requests import BackendInfo, GenerateRequest, Generation, register_kind, request_key_material
from camels.evals.scoring import register_scorer
from camels.evals.task import PLAIN, Item, RequestContext, Task, TaskData, register_task


@dataclass(frozen=True, slots=True)
class CalcRequest:
    expression: str

    kind = "calc"
    method = "calculate"


@dataclass(frozen=True, slots=True)
class CalcResult:
    value: str
    ok: bool


register_kind(CalcRequest, CalcResult)

_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.USub: operator.neg,
        ast.Eq: operator.eq}


def calculate(expression: str) -> Any:
    """Evaluate + - * == on integers (nothing else), like a tiny sandbox would run a program."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.operand))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _OPS:
            return _OPS[type(node.ops[0])](ev(node.left), ev(node.comparators[0]))
        raise ValueError(f"not allowed: {ast.dump(node)}")

    return ev(ast.parse(expression, mode="eval"))


class Calculator:
    """The scorer of ``calc`` requests. Counts calls and answered requests; ``CALC_LOG`` appends one line per
    answered request; ``CALC_KILL_AT_CALL=N`` SIGKILLs the process when its N-th call starts."""

    BUILT: list[Calculator] = []

    def __init__(self, fingerprint: str = "calc-v1") -> None:
        self.info = BackendInfo(name="calculator", model="python-ast", fingerprint=fingerprint,
                                details={"ops": "+-*=="})
        self.calls = 0
        self.answered: list[CalcRequest] = []
        Calculator.BUILT.append(self)

    def calculate(self, requests: Sequence[CalcRequest]) -> list[CalcResult]:
        self.calls += 1
        kill_at = os.environ.get("CALC_KILL_AT_CALL")
        if kill_at and self.calls >= int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        out = []
        for r in requests:
            try:
                out.append(CalcResult(value=str(calculate(r.expression)), ok=True))
            except (ValueError, SyntaxError) as e:
                out.append(CalcResult(value=str(e), ok=False))
        self.answered.extend(requests)
        log = os.environ.get("CALC_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.writelines(request_key_material(r) + "\n" for r in requests)
        return out


register_scorer("calc", lambda task: Calculator())


@dataclass(frozen=True)
class ArithConfig:
    n: int = 10


@register_task
class Arith(Task):
    """``n`` items ``i*7 + 3 - i``; the model's first integer is checked by the calculator."""

    name = "arith"
    version = "1"
    Config = ArithConfig
    primary_metric = "accuracy"
    scoring_kinds = ("calc",)

    def load(self, data_path: Any = None) -> TaskData:
        items = [Item(f"arith:{i}", {"expression": f"{i} * 7 + 3 - {i}"}) for i in range(self.config.n)]
        return TaskData(items=items, sources={"builtin:arith": "v1"})

    def requests(self, item: Item, ctx: RequestContext = PLAIN) -> list[Any]:
        return [GenerateRequest([("user", f"What is {item.data['expression']}?")], max_tokens=8)]

    def scoring_requests(self, item: Item, results: Sequence[Any]) -> list[Any]:
        text = results[0].texts[0] if isinstance(results[0], Generation) and results[0].texts else ""
        m = re.search(r"-?\d+", text)
        guess = m.group(0) if m else "0"
        return [CalcRequest(f"({guess}) == ({item.data['expression']})")]

    def score(self, item: Item, results: Sequence[Any], verdicts: Sequence[Any] = ()) -> dict[str, Any]:
        (verdict,) = verdicts
        return {"correct": float(verdict.ok and verdict.value == "True")}

    def aggregate(self, items: Sequence[Item], scores: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"accuracy": sum(s["correct"] for s in scores) / len(scores), "n": len(scores)}


if __name__ == "__main__":  # ``python scoringfakes.py eval ...``: the camels CLI with this task registered
    from camels.cli import main

    sys.exit(main(sys.argv[1:]))
