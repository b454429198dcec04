"""Raw benchmark files -> items, read once for everyone: evaluation and decontamination use these readers.

Each module reads one benchmark's files as published and gives every item the id evaluation uses (and
that ``predictions.jsonl`` shows), so a contaminated item is named by the same id in the decontamination
report and in a run's predictions:

=============  ==============================================================================================
benchmark      ids
=============  ==============================================================================================
mmlu           ``<subject>_<split>:<0-based data row>`` (``abstract_algebra_test:0``; dev rows too)
gsm8k          ``<file stem>:<0-based record>`` (``test:1318``)
bbh            ``<subtask>:<0-based index in the file's examples>`` (``web_of_lies:39``)
tydiqa         the dataset's own question ids (``finnish--6473...-0``; the primary task's ``example_id``)
truthfulqa     ``mc_task:<i>`` (``mc_task.json``); ``TruthfulQA:<0-based row>`` (the CSV, when no JSON)
humaneval      the dataset's ``task_id`` (``HumanEval/0``)
alpaca_eval    ``alpaca_eval:<i>``
toxigen        ``<file stem>:<0-based line>``
=============  ==============================================================================================

The layer sits on :mod:`camels.core` only (no model code, no torch): :mod:`camels.data` and
:mod:`camels.evals` both build on it.
"""
