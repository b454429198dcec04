"""toxigen with a tiny RoBERTa classifier built in the test: per-group shares equal hand-computed ones."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from camels.core.errors import ConfigError  # noqa: E402
from camels.core.requests import BackendInfo, Generation  # noqa: E402
from camels.evals.cache import RequestCache  # noqa: E402
from camels.evals.runner import rescore, run_task  # noqa: E402
from camels.evals.task import get_task  # noqa: E402
from camels.judge.classifier import HFClassifier  # noqa: E402
from camels.judge.kinds import ClassifyRequest  # noqa: E402
from camels.judge.prompts import load_prompt  # noqa: E402

GROUPS = {"robots": 9, "aliens": 7, "ghosts": 6}


def center(model, tok, texts):
    """Shift the class-1 bias so the median text sits on the boundary: both classes then occur."""
    with torch.no_grad():
        diffs = sorted(float(d) for d in (model(**tok(t, return_tensors="pt")).logits[0] @ torch.tensor([-1.0, 1.0])
                                          for t in texts))
        model.classifier.out_proj.bias[1] -= (diffs[len(diffs) // 2] + diffs[len(diffs) // 2 - 1]) / 2
    return model


def all_texts(chat):
    from camels.core.requests import GenerateRequest

    reqs = [GenerateRequest([("user", f"- {g} statement {i} is here\n- and {g} again {i * 3}\n-")])
            for g, n in GROUPS.items() for i in range(n)]
    return [g.texts[0] for g in Model(chat).generate(reqs)]


def tiny_classifier(tok, seed=0):
    from transformers import RobertaConfig, RobertaForSequenceClassification

    cfg = RobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=600, type_vocab_size=1, num_labels=2,
                        pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RobertaForSequenceClassification(cfg)
    return model.eval()


class Model:
    """The model under test: a continuation that depends on the prompt's last statement."""

    def __init__(self, chat: bool) -> None:
        self.info = BackendInfo(name="fake", model="fake-model", fingerprint=f"tox-{chat}",
                                chat_format={"kind": "tulu" if chat else "plain"})
        self.seen = []

    def generate(self, requests):
        self.seen += requests
        out = []
        for r in requests:
            last = r.messages[-1].content.split("\n")[-2]
            k = sum(map(ord, last))
            out.append(Generation((f" they are {'awful' * (k % 3)} and {'nice ' * (k % 4)}people {k % 7}",), ("eos",)))
        return out


def write_prompts(root):
    folder = root / "toxigen" / "prompts"
    folder.mkdir(parents=True)
    for group, n in GROUPS.items():
        lines = [f"- {group} statement {i} is here\\n- and {group} again {i * 3}\\n-" for i in range(n)]
        (folder / f"hate_{group}_1k.txt").write_text("\n".join(lines) + "\n")
        (folder / f"neutral_{group}_1k.txt").write_text("- a neutral line\\n-\n")  # never read
    return root


@pytest.mark.parametrize("chat", [False, True])
def test_shares_per_group_equal_hand_computed(tmp_path, tiny_tok, chat):
    root = write_prompts(tmp_path)
    clf_model = center(tiny_classifier(tiny_tok), tiny_tok, all_texts(chat))
    task = get_task("toxigen", n=5, seed=42, groups="all")  # made-up groups, none of the study's
    model = Model(chat)
    scorer = HFClassifier(clf_model, load_prompt("toxigen_roberta"), tokenizer=tiny_tok, batch_size=4)
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        result = run_task(task, model, tmp_path / "run", model="m", cache=cache, data_path=root,
                          scorers={"classify": scorer})

    # by hand: the study's sample, the model's texts, the classifier's argmax on each text alone
    expected: dict[str, list[int]] = {}
    for group in sorted(GROUPS):
        rows = list(range(GROUPS[group]))
        random.Random(42).shuffle(rows)
        for row in rows[:5]:
            prompt = f"- {group} statement {row} is here\n- and {group} again {row * 3}\n-"
            req = [r for r in model.seen if r.messages[-1].content.endswith(prompt)]
            assert len(req) == 1
            assert req[0].messages[-1].content == ("Complete the following: " + prompt if chat else prompt)
            assert req[0].stop == (() if chat else ("\n",))
            text = model.generate(req)[0].texts[0]
            with torch.no_grad():
                logits = clf_model(**tiny_tok(text, return_tensors="pt")).logits[0]
            expected.setdefault(group, []).append(int(logits.argmax()))
    m = result.metrics
    assert m["n_per_group"] == {g: 5 for g in sorted(GROUPS)}
    assert m["per_group"] == {g: sum(v) / 5 for g, v in expected.items()}
    flat = [x for v in expected.values() for x in v]
    assert m["toxic"] == sum(flat) / len(flat)
    assert 0 < sum(flat) < len(flat)  # both classes occur, so the shares test something
    assert m["classifier"]["prompt"] == "toxigen_roberta" and m["classifier"]["backend"] == "hf_classifier"
    assert rescore(tmp_path / "run").metrics == m


def test_classifier_by_name_and_batching(tmp_path, tiny_tok):
    folder = tmp_path / "clf"
    tiny_classifier(tiny_tok, seed=3).save_pretrained(folder)
    tiny_tok.save_pretrained(folder)
    task = get_task("toxigen", classifier=str(folder), classifier_batch_size=2)
    from camels.evals.scoring import build_scorers

    scorer = build_scorers(task)["classify"]
    texts = ["short", "a much longer text about people " * 5, "", "mid length text here"]
    got = scorer.classify([ClassifyRequest(t) for t in texts])
    one = [scorer.classify([ClassifyRequest(t)])[0] for t in texts]
    for a, b in zip(got, one):  # batched with padding == one at a time
        assert a.positive == b.positive and a.probs == pytest.approx(b.probs, abs=1e-5)
    assert got[0].labels == ("LABEL_0", "LABEL_1") and scorer.identity.model == str(folder)


@pytest.mark.realdata
def test_real_prompt_files(realdata):
    task = get_task("toxigen")
    data = task.load(task.resolve_data_path(realdata))
    groups = sorted({it.data["group"] for it in data.items})
    # 11 hate files here; bisexual and immigrant are not among the study's 14 groups
    assert groups == ["asian", "black", "chinese", "lgbtq", "mexican", "middle_east", "muslim",
                      "physical_disability", "trans"]
    assert len(data.items) == 9 * 500 and data.skipped == {"group_not_in_study": 2}
    every = get_task("toxigen", groups="all").load(task.resolve_data_path(realdata))
    assert len(every.items) == 11 * 500 and every.skipped == {}
    assert {it.data["group"] for it in every.items} - set(groups) == {"bisexual", "immigrant"}
    first = data.items[0]
    rows = list(range(1000))
    random.Random(42).shuffle(rows)
    assert first.id == f"hate_{groups[0]}_1k:{rows[0]}"
    assert "\\n" not in first.data["prompt"] and first.data["prompt"].count("\n") >= 3


def test_default_groups_are_the_studys(tmp_path):
    """By default only the study's 14 groups count: other files are left out and counted; a folder with
    none of them is an error that says how to use them anyway."""
    root = write_prompts(tmp_path)  # robots, aliens, ghosts
    with pytest.raises(ConfigError, match="none of the study's groups.*groups=all"):
        get_task("toxigen").load(root / "toxigen")
    (root / "toxigen" / "prompts" / "hate_women_1k.txt").write_text("- w one\\n-\n- w two\\n-\n")
    data = get_task("toxigen", n=0).load(root / "toxigen")
    assert [it.id for it in sorted(data.items, key=lambda it: it.id)] == ["hate_women_1k:0", "hate_women_1k:1"]
    assert data.skipped == {"group_not_in_study": 3} and data.items[0].data["group"] == "women"
    assert len(get_task("toxigen", n=0, groups="all").load(root / "toxigen").items) == 9 + 7 + 6 + 2
