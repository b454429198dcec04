"""Shipped judge prompts: every (name, version) has one text; editing a prompt means bumping its version."""

from __future__ import annotations

import pytest

from camels.core.errors import ConfigError
from camels.judge.prompts import load_prompt, prompt_names

# (version, sha256 of the prompt text and parsing) of every shipped prompt. A changed text with the same
# version fails here: bump the version in the YAML file and add the new pair.
PINNED = {
    "alpaca_eval_clf_gpt4_turbo": (1, "92bb1a981ab8bc92ec18cbf581c7db3d92d1d421777911c8e26e09dd54d14228"),
    "alpaca_eval_gpt4": (1, "e4db8aae9703753e3e9bba3109e1be81cdcd5370118fe22f032f7518f2551ab4"),
    "toxigen_roberta": (1, "5442c811805924326a28f822dc04510cfd6a7e02d3cf4eae224324117cca8baa"),
    "truthfulqa_info": (1, "0834838594e8ec1219ae1a86f78a105c4753763e0447f0a95f077c247d863bb1"),
    "truthfulqa_truth": (1, "e93e71b9aa09a03e6c38e889852cb8a5330a84a6437235f649739b3f2ebd0fdb"),
}


def test_shipped_prompts_are_pinned():
    assert prompt_names() == sorted(PINNED)
    for name, (version, sha) in PINNED.items():
        p = load_prompt(name)
        assert (p.name, p.version, p.sha256) == (name, version, sha), name


def test_alpaca_eval_prompt_renders_in_one_pass():
    p = load_prompt("alpaca_eval_gpt4")
    system, user = p.render(instruction="Say {output_1}", output_1="first", output_2="second")
    assert system == ("system", "You are a helpful assistant, that ranks models by the quality of their answers.")
    assert '"instruction": """Say {output_1}""",' in user[1]  # placeholders inside values stay as they are
    assert user[1].index('"answer": """first"""') < user[1].index('"answer": """second"""')
    assert p.decoding == {"temperature": 0, "max_tokens": 100} and p.parser == "ranking"


def test_truthfulqa_judges_prompt_format():
    t, i = load_prompt("truthfulqa_truth"), load_prompt("truthfulqa_info")
    assert t.render(question="Q?", answer="A.") == [("user", "Q: Q?\nA: A.\nTrue:")]
    assert i.render(question="Q?", answer="A.") == [("user", "Q: Q?\nA: A.\nHelpful:")]
    assert t.choices == [" yes", " no"] and t.threshold == 0.5


def test_bad_prompt_files_are_refused(tmp_path):
    bad = tmp_path / "p.yaml"
    bad.write_text("name: p\nversion: 1\nkind: pairwise\nparser: ranking\nmessages:\n"
                   "  - {role: user, content: 'only {instruction} and {output_1}'}\n")
    with pytest.raises(ConfigError, match=r"p.yaml: judge prompt .p.: messages lack the placeholder \{output_2\}"):
        load_prompt(bad)
    bad.write_text("name: p\nversion: one\nkind: yesno\n")
    with pytest.raises(ConfigError, match="version"):
        load_prompt(bad)
    with pytest.raises(ConfigError, match="unknown judge prompt 'nope'"):
        load_prompt("nope")
