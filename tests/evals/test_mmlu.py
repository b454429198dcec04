"""MMLU: prompt text against hand-written golden strings, shared 5-shot prefixes, oracles on the real files,
both CSV layouts, shot dropping, the category table."""

from __future__ import annotations

import csv
from collections import Counter

import pytest
from evalfakes import FakeBackend, choice_oracle, constant_choice

from camels.core.errors import ConfigError
from camels.core.requests import request_key_material
from camels.core.results import TaskResult
from camels.core.template import PlainFormat, TuluFormat
from camels.evals.cache import RequestCache
from camels.evals.runner import run_task
from camels.evals.task import Item, RequestContext, get_task
from camels.evals.tasks.mmlu import CATEGORIES, SUBCATEGORIES, SUBJECTS, letter_from_text

# The study's header has two spaces after "about": its code (like the original MMLU code) formats the subject
# as " " + " ".join(words) and writes it after "about ".
GOLDEN_0SHOT = (
    "The following are multiple choice questions (with answers) about  abstract algebra.\n\n"
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\n"
    "A. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
)

GOLDEN_5SHOT = (
    "The following are multiple choice questions (with answers) about  world religions.\n\n"
    " What is the sign of the covenant for Jewish males?\nA. The rainbow\nB. Circumcision\nC. A son\n"
    "D. Bar mitzvah\nAnswer: B\n\n"
    "What is the Second Gem in Buddhism?\nA. The Dharma\nB. The Sangha\nC. The Buddha\nD. The Bodhisattva\n"
    "Answer: A\n\n"
    ' In which dynasty was the "Mandate of Heaven" developed to legitimatize the new rulers?\nA. Shang\n'
    "B. Zhou\nC. Han\nD. Xia\nAnswer: B\n\n"
    " Which Japanese government promoted a kind of national cult based on the emperor and his associations "
    "with kami?\nA. Honen\nB. Tanaka\nC. Tokugawa\nD. Meiji\nAnswer: D\n\n"
    "How can the Upanishads be characterized?\nA. Ritual texts\nB. Philosophical texts\nC. Hymns\n"
    "D. Origin stories\nAnswer: B\n\n"
    " What can murtis be translated as?\nA. Offerings\nB. Prayers\nC. Apparitions\nD. Idols\nAnswer:"
)

CHAT = RequestContext(chat=True)


@pytest.fixture(scope="module")
def mmlu_root(realdata):
    return realdata / "mmlu"


def _gold_shares(root):
    """Answer counts per subject read straight from the CSVs (independent of the task code)."""
    counts = {}
    for path in sorted((root / "data" / "mmlu" / "test").glob("*_test.csv")):
        rows = list(csv.reader(open(path, encoding="utf-8", newline="")))[1:]
        counts[path.name[: -len("_test.csv")]] = Counter(int(r[5]) for r in rows)
    return counts


@pytest.mark.realdata
def test_prompt_text_equals_golden(mmlu_root):
    task = get_task("mmlu_0shot", subjects="abstract_algebra")
    items = task.load(mmlu_root).items
    assert items[0].id == "abstract_algebra_test:0" and items[-1].id == "abstract_algebra_test:99"
    (req,) = task.requests(items[0])
    assert req.messages[0].content == GOLDEN_0SHOT
    assert req.choices == (" A", " B", " C", " D") and req.assistant_prefix == ""
    # a base model sees the text as is; a chat model gets its turn markers and the answer prefix
    assert PlainFormat(bos_token="<s>", eos_token="</s>", add_bos=True).prompt(req.messages) == "<s>" + GOLDEN_0SHOT
    (chat_req,) = task.requests(items[0], CHAT)
    assert chat_req.assistant_prefix == "The answer is:"
    rendered = TuluFormat(bos_token="<s>", eos_token="</s>", add_bos=True).prompt(chat_req.messages,
                                                                                  chat_req.assistant_prefix)
    assert rendered == "<s><|user|>\n" + GOLDEN_0SHOT + "\n<|assistant|>\nThe answer is:"

    five = get_task("mmlu_5shot", subjects="world_religions")
    first = five.load(mmlu_root).items[0]
    assert first.id == "world_religions_test:0"
    assert five.requests(first)[0].messages[0].content == GOLDEN_5SHOT
    # the study's plain prompt is the text as is; its chat prompt is "<|user|>\n" + text + "\n<|assistant|>\n"
    # followed by "The answer is:" (no BOS in the text: the tokenizer adds it)
    plain_fmt = PlainFormat(bos_token="<s>", eos_token="</s>", add_bos=False)
    tulu = TuluFormat(bos_token="<s>", eos_token="</s>", add_bos=False)
    assert plain_fmt.prompt(five.requests(first)[0].messages) == GOLDEN_5SHOT
    (chat5,) = five.requests(first, CHAT)
    assert tulu.prompt(chat5.messages, chat5.assistant_prefix) == (
        "<|user|>\n" + GOLDEN_5SHOT + "\n<|assistant|>\nThe answer is:")
    assert tulu.prompt(chat_req.messages, chat_req.assistant_prefix) == (
        "<|user|>\n" + GOLDEN_0SHOT + "\n<|assistant|>\nThe answer is:")
    # lm-evaluation-harness writes one space after "about" (and strips the question): header="single"
    single = get_task("mmlu_0shot", subjects="abstract_algebra", header="single")
    single.load(mmlu_root)
    assert single.requests(items[0])[0].messages[0].content == GOLDEN_0SHOT.replace("about  ", "about ")


@pytest.mark.realdata
def test_five_shot_prefix_is_shared_within_a_subject(mmlu_root):
    task = get_task("mmlu_5shot", subjects="anatomy,virology")
    items = task.load(mmlu_root).items
    by_subject = {}
    for item in items:
        text = task.requests(item, CHAT)[0].messages[0].content
        by_subject.setdefault(item.data["subject"], []).append(text)
    assert {s: len(v) for s, v in by_subject.items()} == {"anatomy": 135, "virology": 166}
    for subject, texts in by_subject.items():
        prefix = task.prompt_text(Item("x", {"subject": subject, "question": "", "choices": ["", "", "", ""]}))
        prefix = prefix[: prefix.rindex("Answer: ") + len("Answer: X\n\n")]  # header + five solved examples
        assert prefix.count("\nAnswer: ") == 5
        assert all(t.startswith(prefix) for t in texts)
        # and the rendered chat prompts share it too, right after the user header
        fmt = TuluFormat(bos_token="<s>", eos_token="</s>", add_bos=True)
        assert all(fmt.prompt([("user", t)], "The answer is:").startswith("<s><|user|>\n" + prefix) for t in texts)
    assert by_subject["anatomy"][0][:200] != by_subject["virology"][0][:200]


def _run(task, backend, tmp_path, data):
    with RequestCache(tmp_path / "cache.sqlite") as cache:
        return run_task(task, backend, tmp_path / task.label, model="oracle", cache=cache, data_path=data)


@pytest.mark.realdata
@pytest.mark.slow
def test_oracles_on_all_57_subjects(mmlu_root, tmp_path):
    task = get_task("mmlu_5shot", bootstrap_resamples=200)
    items = task.load(mmlu_root).items
    assert len(items) == 14042
    gold = {request_key_material(task.requests(it)[0]): it.data["answer"] for it in items}
    perfect = _run(task, FakeBackend(choice_oracle(gold), fingerprint="gold"), tmp_path, mmlu_root)
    m = perfect.metrics
    assert m["accuracy"] == 1.0 and m["n"] == 14042 and m["accuracy_ci95"] == [1.0, 1.0]
    assert len(m["per_subject"]) == 57 and len(m["per_subcategory"]) == 17 and len(m["per_category"]) == 4
    assert all(v["accuracy"] == 1.0 for v in m["per_subject"].values())
    assert sum(v["n"] for v in m["per_category"].values()) == 14042

    shares = _gold_shares(mmlu_root)
    always_a = _run(get_task("mmlu_5shot", bootstrap_resamples=200), FakeBackend(constant_choice(0), fingerprint="A"),
                    tmp_path / "a", mmlu_root)
    n_a = sum(c[0] for c in shares.values())
    assert always_a.metrics["accuracy"] == pytest.approx(n_a / 14042, abs=1e-15)
    for subject, c in shares.items():
        assert always_a.metrics["per_subject"][subject] == {"accuracy": pytest.approx(c[0] / sum(c.values())),
                                                            "n": sum(c.values())}
    stem = [s for s in shares if CATEGORIES["STEM"].count(SUBCATEGORIES[s])]
    n_stem = sum(sum(shares[s].values()) for s in stem)
    assert always_a.metrics["per_category"]["STEM"]["n"] == n_stem
    assert always_a.metrics["per_category"]["STEM"]["accuracy"] == pytest.approx(
        sum(shares[s][0] for s in stem) / n_stem)
    assert TaskResult.read(tmp_path / "a" / "mmlu_5shot" / "metrics.json").metrics == always_a.metrics


@pytest.mark.realdata
def test_both_csv_layouts_give_the_same_items(mmlu_root, tmp_path):
    """Rewrite two real subjects in the original layout (no header, letters) and compare."""
    for split in ("test", "dev"):
        (tmp_path / split).mkdir()
        for subject in ("anatomy", "astronomy"):
            rows = list(csv.reader(open(mmlu_root / "data" / "mmlu" / split / f"{subject}_{split}.csv",
                                        encoding="utf-8", newline="")))[1:]
            with open(tmp_path / split / f"{subject}_{split}.csv", "w", encoding="utf-8", newline="") as f:
                csv.writer(f).writerows([*r[:5], "ABCD"[int(r[5])]] for r in rows)
    task = get_task("mmlu_5shot", subjects="anatomy,astronomy")
    hf = task.load(mmlu_root).items
    orig = task.load(tmp_path).items
    assert [(i.id, i.data) for i in hf] == [(i.id, i.data) for i in orig]
    assert len(hf) == 135 + 152


def test_original_layout_fixture_and_subject_selection(fixtures):
    root = fixtures / "evals" / "mmlu_hendrycks"
    data = get_task("mmlu_5shot").load(root)
    assert [i.id for i in data.items][:2] == ["astronomy_test:0", "astronomy_test:1"]
    assert [i.data["answer"] for i in data.items] == [0, 1, 2, 3, 0, 1, 0, 2]
    assert len(data.sources) == 4 and all(len(v) == 64 for v in data.sources.values())
    only = get_task("mmlu_0shot", subjects=["virology"]).load(root)
    assert [i.id for i in only.items] == ["virology_test:0", "virology_test:1", "virology_test:2"]
    assert len(only.sources) == 1  # 0-shot reads no dev file
    with pytest.raises(ConfigError, match="unknown MMLU subjects"):
        get_task("mmlu_0shot", subjects="astrology").load(root)
    with pytest.raises(ConfigError, match="no test file"):
        get_task("mmlu_0shot", subjects="anatomy").load(root)


def test_shots_are_dropped_until_the_prompt_fits(fixtures):
    task = get_task("mmlu_5shot", max_prompt_tokens=60)
    item = task.load(fixtures / "evals" / "mmlu_hendrycks").items[0]
    words = lambda req: len(req.messages[0].content.split())  # noqa: E731  (a stand-in tokenizer)
    lengths = [len(task.prompt_text(item, k).split()) for k in range(6)]
    ctx = RequestContext(count_tokens=words)
    (req,) = task.requests(item, ctx)
    kept = max(k for k in range(6) if lengths[k] + 1 <= 60)
    assert 0 < kept < 5
    assert req.messages[0].content == task.prompt_text(item, kept)
    assert task.request_extra(item, [req]) == {"shots": kept}
    # the model's own context bounds it too
    (req2,) = task.requests(item, RequestContext(count_tokens=words, max_length=lengths[1] + 1))
    assert task.request_extra(item, [req2]) == {"shots": 1}
    # without token counting every shot stays
    assert task.request_extra(item, task.requests(item)) == {"shots": 5}


def test_category_table_and_letters():
    assert len(SUBJECTS) == 57 and len(set(SUBCATEGORIES.values())) == 17
    assert sorted(s for subs in CATEGORIES.values() for s in subs) == sorted(set(SUBCATEGORIES.values()))
    assert letter_from_text("D") == 3 and letter_from_text("The answer is: B") == 1
    assert letter_from_text("none of them") is None
