"""Built-in demo data: small, exactly checkable skills that a tiny model can learn on a CPU in a minute.

Each skill is a function of a seeded RNG that returns (instruction, input, output). The demo writes them in
the raw formats of real sources (an Alpaca-style JSON list, a Dolly-style JSONL, an OpenAssistant message
tree and a ShareGPT chat), so ``camels demo`` exercises the same converters a user runs on the real
datasets. A held-out set (arguments never seen in training) measures whether the model learned.

Nothing here is random at import time and nothing depends on the machine: the same seed gives the same
bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

WORDS = ("sun", "sea", "cat", "dog", "red", "blue", "tree", "bird", "moon", "star", "fish", "rain",
         "hill", "road", "milk", "bread", "snow", "wind", "gold", "leaf")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _count(rng: random.Random) -> tuple[str, str, str]:
    a = rng.randint(0, 150)
    b = a + rng.randint(2, 6)
    return f"Count from {a} to {b}.", "", " ".join(str(i) for i in range(a, b + 1))


def _reverse(rng: random.Random) -> tuple[str, str, str]:
    words = rng.sample(WORDS, rng.randint(2, 4))
    return "Reverse the order of the words.", " ".join(words), " ".join(reversed(words))


def _spell(rng: random.Random) -> tuple[str, str, str]:
    n = rng.randint(10, 999)
    return f"Spell the digits of {n}.", "", " ".join(DIGITS[int(d)] for d in str(n))


def _upper(rng: random.Random) -> tuple[str, str, str]:
    words = rng.sample(WORDS, rng.randint(1, 3))
    return "Write the words in capital letters.", " ".join(words), " ".join(w.upper() for w in words)


SKILLS: dict[str, Callable[[random.Random], tuple[str, str, str]]] = {
    "count": _count,
    "reverse": _reverse,
    "spell": _spell,
    "upper": _upper,
}


def _words(e: dict[str, str]) -> str:
    text = (e["instruction"] + " " + e["input"]).lower()
    return " " + " ".join("".join(ch for ch in text if ch.isalnum() or ch == " ").split()) + " "


def examples(n: int, seed: int, *, exclude: set[tuple[str, str]] | None = None,
             avoid: list[str] = ()) -> list[dict[str, str]]:
    """``n`` examples cycling through the skills, each {"skill", "instruction", "input", "output"}.

    Pairs (instruction, input) in ``exclude`` are never produced, nor examples whose prompt words are a
    run of words of one of the ``avoid`` texts (so no training prompt is an n-gram subset of a held-out
    prompt, and decontamination finds only what the demo plants on purpose).
    """
    rng = random.Random(seed)
    names = sorted(SKILLS)
    out: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set(exclude or ())
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise RuntimeError("the demo skills ran out of distinct examples")
        name = names[len(out) % len(names)]
        instruction, inp, output = SKILLS[name](rng)
        if (instruction, inp) in seen:
            continue
        words = _words({"instruction": instruction, "input": inp})
        if any(words in a or a in words for a in avoid):
            continue
        seen.add((instruction, inp))
        out.append({"skill": name, "instruction": instruction, "input": inp, "output": output})
    return out


def split(n_train: int = 480, n_eval: int = 40, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """A training set and a disjoint held-out set."""
    held_out = examples(n_eval, seed + 1)
    train = examples(n_train, seed, exclude={(e["instruction"], e["input"]) for e in held_out},
                     avoid=[_words(e) for e in held_out])
    return train, held_out


def write_raw(folder: str | Path, n_train: int = 480, n_eval: int = 40, seed: int = 0,
              planted: int = 0) -> dict[str, Path]:
    """Write the training examples in four raw source formats plus ``heldout.jsonl``; return the paths.

    ``planted`` held-out items are also written into the ShareGPT file, as single-round chats with ids
    ``demo-planted-<k>``: a contamination for ``camels data decontaminate`` to find.

    Returns {"alpaca": ..., "dolly": ..., "oasst1": ..., "sharegpt": ..., "heldout": ...}.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    train, held_out = split(n_train, n_eval, seed)
    quarter = len(train) // 4
    parts = [train[:quarter], train[quarter:2 * quarter], train[2 * quarter:3 * quarter], train[3 * quarter:]]
    paths: dict[str, Path] = {}

    # Alpaca: one JSON list of {instruction, input, output}.
    paths["alpaca"] = folder / "alpaca_data.json"
    paths["alpaca"].write_text(json.dumps(
        [{"instruction": e["instruction"], "input": e["input"], "output": e["output"]} for e in parts[0]],
        indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    # Dolly: JSONL {instruction, context, response, category}.
    paths["dolly"] = folder / "databricks-dolly.jsonl"
    with open(paths["dolly"], "w", encoding="utf-8") as f:
        for e in parts[1]:
            f.write(json.dumps({"instruction": e["instruction"], "context": e["input"], "response": e["output"],
                                "category": e["skill"]}, ensure_ascii=False) + "\n")

    # OpenAssistant: message trees; two examples per tree, as two sibling assistant replies would be odd,
    # so each tree is a two-round conversation (prompt -> answer -> prompt -> answer).
    paths["oasst1"] = folder / "oasst_trees.jsonl"
    with open(paths["oasst1"], "w", encoding="utf-8") as f:
        items = parts[2]
        for t in range(0, len(items) - 1, 2):
            a, b = items[t], items[t + 1]
            tree = {
                "message_tree_id": f"demo-tree-{t // 2}",
                "tree_state": "ready_for_export",
                "prompt": _oasst_node(f"{t}-p0", "prompter", prompt_text(a), [
                    _oasst_node(f"{t}-a0", "assistant", a["output"], [
                        _oasst_node(f"{t}-p1", "prompter", prompt_text(b), [
                            _oasst_node(f"{t}-a1", "assistant", b["output"], []),
                        ]),
                    ]),
                ]),
            }
            f.write(json.dumps(tree, ensure_ascii=False) + "\n")

    # ShareGPT: a JSON list of {id, conversations[{from, value}]}, three rounds per chat.
    paths["sharegpt"] = folder / "sharegpt.json"
    chats = []
    items = parts[3]
    for c in range(0, len(items), 3):
        turns = []
        for e in items[c:c + 3]:
            turns += [{"from": "human", "value": prompt_text(e)}, {"from": "gpt", "value": e["output"]}]
        chats.append({"id": f"demo-chat-{c // 3}", "conversations": turns})
    for k, e in enumerate(held_out[:planted]):
        chats.append({"id": f"demo-planted-{k}", "conversations": [
            {"from": "human", "value": prompt_text(e)}, {"from": "gpt", "value": e["output"]}]})
    paths["sharegpt"].write_text(json.dumps(chats, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")

    paths["heldout"] = folder / "heldout.jsonl"
    with open(paths["heldout"], "w", encoding="utf-8") as f:
        for i, e in enumerate(held_out):
            f.write(json.dumps({"id": f"heldout:{i}", **e}, ensure_ascii=False) + "\n")
    return paths


def prompt_text(e: dict[str, str]) -> str:
    """The user turn of an example: the instruction, then a blank line and the input when there is one."""
    return e["instruction"] + ("\n\n" + e["input"] if e["input"] else "")


def _oasst_node(mid: str, role: str, text: str, replies: list[dict]) -> dict:
    return {"message_id": f"demo-{mid}", "role": role, "text": text, "lang": "en", "deleted": False,
            "review_result": True, "rank": 0 if role == "assistant" else None, "replies": replies}
