"""A loopback OpenAI-compatible judge server: the API backend tests' server with a scripted judge.

It reuses ``TinyServer`` of ``tests/backends/test_api.py`` (real HTTP on 127.0.0.1, injectable faults:
``429`` with Retry-After, ``500``, ``timeout``, ``malformed`` = a truncated body, ``shape``) and replaces the
model side with a judge whose verdicts follow a rule the tests can compute by hand:

* the output holding the word ``GOOD`` wins; with both or neither, the longer output wins (the first on
  equal length), unless ``bias_first`` is set (then the output shown first always wins);
* an instruction holding ``GARBLE`` always gets a garbled (unparseable) answer; ``garble`` > 0 garbles the
  next that many answers;
* an instruction holding ``HANG`` blocks its request until ``release`` is set (``hanging`` tells that one
  is blocked), then fails it without an answer: a call in flight when a client is killed;
* usage: prompt tokens = whitespace-separated words of all messages, completion tokens = words of the
  answer. The server's own count (``usage``, ``ok_calls``) covers the answers it served whole.

Every request the server answered whole is logged in ``served`` as (instruction, output_1, output_2).
"""

from __future__ import annotations

import importlib.util
import re
import threading
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "camels_test_api_server", Path(__file__).resolve().parents[1] / "backends" / "test_api.py")
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
TinyServer = _mod.TinyServer

ANSWER = re.compile(r'"answer": """(.*?)"""', re.S)
INSTRUCTION = re.compile(r'"instruction": """(.*?)""",', re.S)


def ranking(first_wins: bool) -> str:
    r1, r2 = (1, 2) if first_wins else (2, 1)
    return f"[{{'model': 'model_1', 'rank': {r1}}}, {{'model': 'model_2', 'rank': {r2}}}]"


def first_wins(o1: str, o2: str) -> bool:
    g1, g2 = "GOOD" in o1, "GOOD" in o2
    if g1 != g2:
        return g1
    return len(o1) >= len(o2)


class JudgeServer(TinyServer):
    def __init__(self, timeout_sleep: float = 1.0) -> None:
        super().__init__(timeout_sleep=timeout_sleep)
        self.garble = 0
        self.bias_first = False
        self.served: list[tuple[str, str, str]] = []
        self.judge_lock = threading.Lock()
        self.hanging = threading.Event()
        self.release = threading.Event()

    def answer(self, path: str, body: dict) -> dict:
        if path != "/v1/chat/completions":
            return super().answer(path, body)
        prompt = "\n".join(m["content"] for m in body["messages"])
        outputs = ANSWER.findall(prompt)
        inst = INSTRUCTION.search(prompt)
        if len(outputs) != 2 or inst is None:
            raise ValueError("not a pairwise judge prompt")
        o1, o2 = outputs
        if "HANG" in inst.group(1) and not self.release.is_set():
            self.hanging.set()
            self.release.wait(120)
            raise ValueError("the client went away")
        with self.judge_lock:
            garble = "GARBLE" in inst.group(1) or self.garble > 0
            if self.garble > 0 and "GARBLE" not in inst.group(1):
                self.garble -= 1
            self.served.append((inst.group(1), o1, o2))
        text = "Model 2 looks better to me." if garble else ranking(self.bias_first or first_wins(o1, o2))
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}
        return {"model": body["model"], "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                                     "finish_reason": "stop"}], "usage": usage}
