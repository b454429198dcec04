"""Super-NaturalInstructions: one JSON file per task, ``Definition`` (list of strings), ``Positive
Examples`` (``[{input, output, explanation}]``) and ``Instances`` (``[{id, input, output: [..]}]``).

One *record* is one task (the file's stem is the task name, e.g. ``task001_quoref_question_generation``).
The study's rule (open-instruct ``reformat_datasets.py``, ``convert_super_ni_data``, e44fcf5, June 2023;
the default, ``split=study``): one random stream over the tasks in the task list's order; per task, a
random sample of ``zero_shot + few_shot`` (60 + 20) instances when the task has more, else all its
instances in file order; the first 60 are zero-shot (a random single-turn template with the definition as
the instruction), the rest few-shot: the definition, ``n_examples`` (2) positive examples drawn at random
for each instance (all of them, in order, when the task has 2 or fewer) and the instance, each as
``"Input:\n..\nOutput:\n.."`` blocks (:func:`few_shot_prompt`). The answer is ``output[0]``.

camels' own rule (``split=ratio``, ``--preset camels``): a task with fewer than 80 instances keeps the 3:1
ratio (:func:`split_counts`), the few-shot prompts show the first 2 positive examples, and a task without
positive examples gives zero-shot prompts only. Conversation ids are the instances' own ids.

Which tasks to use is chosen with ``--option tasks=FILE`` in ``camels data convert`` (the study: the
cross-lingual split's ``splits/xlingual/train_tasks.txt`` without its ``_mmmlu_`` tasks), which keeps the
input files named in that list, in the list's order.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from camels.core.chat import Conversation
from camels.core.errors import RecordError
from camels.data.sources.base import Context, Source, has_keys, items, need_object, text
from camels.data.sources.single_turn import CAMELS, CHOICES, OPTIONS, single_turn


def definition_of(task: Mapping[str, Any]) -> str:
    value = task.get("Definition")
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        value = value[0]
    if not isinstance(value, str):
        raise RecordError("missing_field" if value is None else "bad_type",
                          "expected a list of strings", field="Definition")
    if not value.strip():
        raise RecordError("empty_content", "text is empty", field="Definition")
    return value.strip()


def block(input: str, output: str) -> str:
    return f"Input:\n{input.strip()}\nOutput:\n{output.strip()}"


def few_shot_prompt(definition: str, examples: list[tuple[str, str]], input: str) -> str:
    """
    >>> print(few_shot_prompt("Add.", [("1 2", "3")], "2 2"))
    Add.
    <BLANKLINE>
    Input:
    1 2
    Output:
    3
    <BLANKLINE>
    Input:
    2 2
    Output:
    """
    shots = "".join(f"{block(i, o)}\n\n" for i, o in examples)
    return f"{definition}\n\n{shots}Input:\n{input.strip()}\nOutput:"


def instance(task: Mapping[str, Any], k: int, stem: str) -> tuple[str, str, str]:
    inst = task["Instances"][k]
    where = f"Instances[{k}]."
    if not isinstance(inst, Mapping):
        raise RecordError("bad_type", "expected an object", field=f"Instances[{k}]")
    outputs = items(inst, "output", where=where)
    if not outputs or not isinstance(outputs[0], str) or not outputs[0].strip():
        raise RecordError("empty_content", "needs a non-empty first output", field=f"{where}output")
    return (inst.get("id") if isinstance(inst.get("id"), str) else f"{stem}:{k}",
            text(inst, "input", where=where), outputs[0])


def split_counts(n: int, zero: int, few: int) -> tuple[int, int]:
    """How many zero-shot and few-shot instances a task of ``n`` instances gives (same ratio when short).

    >>> split_counts(1000, 60, 20), split_counts(8, 60, 20), split_counts(0, 60, 20)
    ((60, 20), (6, 2), (0, 0))
    """
    if n >= zero + few:
        return zero, few
    n_few = round(n * few / (zero + few)) if zero + few else 0
    return n - n_few, n_few


def convert(row: Any, ctx: Context) -> list[Conversation]:
    task = need_object(row)
    definition = definition_of(task)
    n_instances = len(items(task, "Instances"))
    positives = items(task, "Positive Examples", required=False)
    zero_wanted, few_wanted = ctx.option("zero_shot"), ctx.option("few_shot")
    study = ctx.options.get("split", "study") == "study"
    rng = ctx.draw(ctx.stem)
    if study:
        # the study: a random sample of 80 when the task has more, else every instance in file order; the
        # first 60 are zero-shot, the rest few-shot (a task of 50 instances gives 50 zero-shot, 0 few-shot)
        if zero_wanted + few_wanted < n_instances:
            chosen = rng.sample(range(n_instances), zero_wanted + few_wanted)
        else:
            chosen = list(range(n_instances))
        zero = min(zero_wanted, len(chosen))
    else:
        zero, few = split_counts(n_instances, zero_wanted, few_wanted)
        chosen = rng.sample(range(n_instances), zero + few)
    out = []
    for n, k in enumerate(chosen):
        id_, input, output = instance(task, k, ctx.stem)
        if n < zero:
            msgs, meta = single_turn(definition, input, output, ctx, ctx.draw(id_), {"task": ctx.stem, "shots": 0})
        else:
            examples = exemplars(positives, ctx.option("n_examples"), rng if study else None)
            if not examples and not study:
                msgs, meta = single_turn(definition, input, output, ctx, ctx.draw(id_),
                                         {"task": ctx.stem, "shots": 0})
            else:
                msgs = [("user", few_shot_prompt(definition, examples, input)), ("assistant", output)]
                meta = {"task": ctx.stem, "shots": len(examples)}
        out.append(Conversation.build(id_, ctx.source, msgs, meta))
    return out


def exemplars(positives: list[Any], n: int, rng: random.Random | None) -> list[tuple[str, str]]:
    """The positive examples shown before one few-shot instance.

    With ``rng`` (the study's rule) a fresh random sample of ``n`` per instance when the task has more than
    ``n``, else all of them in file order; without it (camels' ``exemplars=first``) the first ``n``.
    """
    picked = list(range(len(positives)))
    if rng is not None and n < len(positives):
        picked = rng.sample(picked, n)
    elif rng is None:
        picked = picked[:n]
    out = []
    for k in picked:
        ex = positives[k]
        if not isinstance(ex, Mapping):
            raise RecordError("bad_type", "expected an object", field=f"Positive Examples[{k}]")
        where = f"Positive Examples[{k}]."
        out.append((text(ex, "input", where=where), text(ex, "output", where=where)))
    return out


SOURCE = Source(
    name="superni",
    convert=convert,
    detect=has_keys(("Definition", "Instances")),
    formats=("json",),
    shape="one JSON object per task: Definition, Positive Examples, Instances",
    rule="per task a sample of 80 instances (all when fewer): the first 60 zero-shot (random template), the "
         "rest few-shot (definition + 2 positive examples drawn per instance)",
    hub=None,
    defaults={"zero_shot": 60, "few_shot": 20, "n_examples": 2, "split": "study", **OPTIONS},
    choices={"split": ("study", "ratio"), **CHOICES},
    camels={"split": "ratio", **CAMELS},
)
