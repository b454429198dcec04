from __future__ import annotations

import pytest

from camels.core.chat import Conversation, Message
from camels.core.template import (
    ContractError,
    HFTemplateFormat,
    PlainFormat,
    TuluFormat,
    chat_format_for_tokenizer,
    chat_format_from_dict,
    tokenize_rendered,
)

CONV = Conversation.build(
    "c", "d",
    [("system", "You are terse."), ("user", " What is 2+2? "), ("assistant", "4"), ("user", "And 3+3?"),
     ("assistant", "6\n")],
)
LLAMA = dict(bos_token="<s>", eos_token="</s>", add_bos=True)


def test_tulu_golden_text_and_spans():
    r = TuluFormat(**LLAMA).render(CONV.messages)
    assert r.text == (
        "<s><|system|>\nYou are terse.\n<|user|>\nWhat is 2+2?\n<|assistant|>\n4</s>\n"
        "<|user|>\nAnd 3+3?\n<|assistant|>\n6</s>"
    )
    assert r.trained_text() == ["4</s>", "6</s>"]


def test_tulu_without_bos_and_prompt():
    fmt = TuluFormat(bos_token=None, eos_token="<|endoftext|>", add_bos=False)
    r = fmt.render(CONV.messages[1:3])
    assert r.text == "<|user|>\nWhat is 2+2?\n<|assistant|>\n4<|endoftext|>"
    assert fmt.prompt(CONV.messages[1:2]) == "<|user|>\nWhat is 2+2?\n<|assistant|>\n"
    assert fmt.prompt(CONV.messages[1:2], assistant_prefix="The answer is:").endswith("<|assistant|>\nThe answer is:")
    # The prompt is exactly the rendered text up to the first trained span: train and eval agree.
    assert r.text[: r.trained[0][0]] == fmt.prompt(CONV.messages[1:2])


def test_prompt_must_end_with_user():
    with pytest.raises(ContractError):
        TuluFormat(**LLAMA).prompt(CONV.messages[:3])


def test_plain_format():
    fmt = PlainFormat(**LLAMA)
    r = fmt.render(CONV.messages[1:3])
    assert r.text == "<s>What is 2+2?\n\n4</s>"
    assert r.trained_text() == ["4</s>"]
    assert fmt.prompt(CONV.messages[1:2]) == "<s>What is 2+2?"


CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
BOS_TEMPLATE = "{{ bos_token }}" + CHATML


def test_hf_template_spans_cover_content_and_end_marker():
    fmt = HFTemplateFormat(CHATML, bos_token="<s>", eos_token="<|im_end|>")
    assert fmt.add_bos is True  # the template does not write a BOS, so the contract adds it
    r = fmt.render(CONV.messages)
    assert r.text.startswith("<s><|im_start|>system\nYou are terse.<|im_end|>\n")
    assert r.trained_text() == ["4<|im_end|>", "6<|im_end|>"]
    assert fmt.prompt(CONV.messages[:2]) == "<s><|im_start|>system\nYou are terse.<|im_end|>\n" \
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"


def test_hf_template_that_writes_bos_gets_no_second_one():
    fmt = HFTemplateFormat(BOS_TEMPLATE, bos_token="<s>", eos_token="<|im_end|>")
    assert fmt.add_bos is False
    assert fmt.render(CONV.messages).text.count("<s>") == 1


def test_hf_template_not_prefix_stable_is_refused():
    unstable = "{% for m in messages %}{{ m['content'] }}{% if loop.last %}END{% endif %}{% endfor %}"
    with pytest.raises(ContractError, match="prefix-stable"):
        HFTemplateFormat(unstable, bos_token=None, eos_token="END").render(CONV.messages)


@pytest.mark.parametrize(
    "fmt",
    [TuluFormat(**LLAMA), PlainFormat(bos_token=None, eos_token="</s>", add_bos=False),
     HFTemplateFormat(CHATML, bos_token="<s>", eos_token="<|im_end|>")],
)
def test_serialisation_roundtrip(fmt):
    back = chat_format_from_dict(fmt.to_dict())
    assert back == fmt and back.fingerprint() == fmt.fingerprint()
    assert back.render(CONV.messages) == fmt.render(CONV.messages)


def test_unknown_kind_rejected():
    with pytest.raises(ContractError, match="unknown chat format"):
        chat_format_from_dict({"kind": "vicuna", "eos_token": "</s>"})


def test_tokenize_marks_exactly_assistant_tokens_and_eos(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    assert fmt.add_bos and fmt.bos_token == "<s>" and fmt.eos_token == "</s>"
    r = fmt.render(CONV.messages)
    ids, mask = tokenize_rendered(tiny_tok, r)
    assert ids[0] == tiny_tok.bos_token_id and ids.count(tiny_tok.bos_token_id) == 1
    trained = [i for i, m in zip(ids, mask) if m]
    assert tiny_tok.decode(trained) == "4</s>6</s>"
    # both EOS are single trained tokens; the last token of the sequence is the final EOS
    assert [i for i in trained if i == tiny_tok.eos_token_id] == [tiny_tok.eos_token_id] * 2
    assert ids[-1] == tiny_tok.eos_token_id and mask[-1]
    # the prompt tokenizes to exactly the prefix before the first trained token
    prompt_ids = tiny_tok(fmt.prompt(CONV.messages[:2]), add_special_tokens=False)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids and mask.index(True) == len(prompt_ids)


@pytest.mark.parametrize("kind", ["tulu", "plain", "hf_template"])
def test_multi_turn_prompt_equals_training_text_before_each_assistant_turn(kind):
    """Every prompt of a multi-turn chat is the training text up to that assistant turn's trained span."""
    template = ("{{ bos_token }}{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] }}"
                "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
                "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    if kind == "hf_template":
        fmt = HFTemplateFormat(template, bos_token="<s>", eos_token="</s>")
    else:
        fmt = chat_format_from_dict({"kind": kind, "bos_token": "<s>", "eos_token": "</s>", "add_bos": True})
    msgs = [Message("user", "Hi."), Message("assistant", "Hello."), Message("user", "2+2?"),
            Message("assistant", "4"), Message("user", "And 3+3?")]
    full = fmt.render(msgs + [Message("assistant", "6")])
    for k, end in enumerate((1, 3, 5)):
        if kind == "plain" and end == 1:
            # a one-turn plain prompt is the raw text (benchmark prompts end in "Answer:"), with no separator
            assert fmt.prompt(msgs[:1]) == "<s>Hi."
            continue
        start = full.trained[k][0]
        assert fmt.prompt(msgs[:end]) == full.text[:start], (kind, end)
