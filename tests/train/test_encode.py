"""Encoding: labels come from the chat contract's trained spans, never from token ids."""

from __future__ import annotations

import json

import pytest

from camels.core.template import ContractError, TuluFormat, chat_format_for_tokenizer
from camels.train.encode import (
    IGNORE_INDEX,
    Dropped,
    encode_conversation,
    encode_files,
    inspect_report,
    show_encoded,
)

CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hi"},
    {"role": "assistant", "content": "hi there"},
    {"role": "user", "content": "Again"},
    {"role": "assistant", "content": "hi again"},
]


def _trained_runs(tok, enc):
    """Decoded runs of consecutive trained tokens."""
    runs, cur = [], []
    for t, lab in zip(enc.input_ids, enc.labels):
        if lab != IGNORE_INDEX:
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_only_assistant_content_and_eos_are_trained(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    enc = encode_conversation(tiny_tok, fmt, CONV, 2048)
    assert _trained_runs(tiny_tok, enc) == ["hi there</s>", "hi again</s>"]
    # labels equal the input ids where trained
    assert all(lab in (IGNORE_INDEX, t) for t, lab in zip(enc.input_ids, enc.labels))
    # the text is exactly the contract's rendering, BOS first and not trained
    assert enc.input_ids[0] == tiny_tok.bos_token_id and enc.labels[0] == IGNORE_INDEX
    assert tiny_tok.decode(enc.input_ids) == fmt.render(CONV).text
    assert enc.input_ids.count(tiny_tok.bos_token_id) == 1
    assert enc.n_trained == sum(len(tiny_tok(r, add_special_tokens=False)["input_ids"])
                                for r in ["hi there</s>", "hi again</s>"])


def test_eos_is_trained_when_pad_equals_eos(tiny_tok):
    from camels.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.pad_token = tok.eos_token  # the LLaMA habit that made 2023 models never stop
    assert tok.pad_token_id == tok.eos_token_id
    enc = encode_conversation(tok, chat_format_for_tokenizer(tok, "tulu"), CONV, 2048)
    eos_positions = [i for i, t in enumerate(enc.input_ids) if t == tok.eos_token_id]
    assert len(eos_positions) == 2
    assert [enc.labels[i] for i in eos_positions] == [tok.eos_token_id] * 2


def test_truncation_keeps_the_start_and_drops_untrained(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    full = encode_conversation(tiny_tok, fmt, CONV, 2048)
    cut = encode_conversation(tiny_tok, fmt, CONV, len(full) - 3)
    assert cut.truncated and cut.input_ids == full.input_ids[: len(full) - 3]
    assert cut.labels == full.labels[: len(full) - 3]
    first_trained = next(i for i, lab in enumerate(full.labels) if lab != IGNORE_INDEX)
    with pytest.raises(Dropped) as e:
        encode_conversation(tiny_tok, fmt, CONV, first_trained)
    assert e.value.reason == "no_trained_token_after_truncation"


def test_eos_split_into_pieces_is_a_contract_error(tiny_tok):
    fmt = TuluFormat(bos_token="<s>", eos_token="##END##", add_bos=True)
    with pytest.raises(ContractError, match="never learn to stop"):
        encode_conversation(tiny_tok, fmt, CONV, 2048)


def test_encode_files_counts_drops_by_reason(tiny_tok, tmp_path):
    good = {"dataset": "d", "id": "a", "messages": CONV}
    long_prompt = {"dataset": "d", "id": "b", "messages": [
        {"role": "user", "content": "word " * 400}, {"role": "assistant", "content": "ok"}]}
    bad = {"dataset": "d", "id": "c", "messages": [{"role": "bot", "content": "x"}]}
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (good, long_prompt, bad)) + "\n{not json\n")
    ds = encode_files([path], tiny_tok, chat_format_for_tokenizer(tiny_tok, "tulu"), 64)
    assert [e.id for e in ds.examples] == ["a"]
    assert dict(ds.dropped) == {"no_trained_token_after_truncation": 1, "record:unknown_role": 1,
                                "record:bad_json": 1}
    assert len(ds.data_sha256) == 64
    assert ds.summary()["trained_tokens"] == ds.examples[0].n_trained


def test_show_encoded_brackets_trained_tokens(tiny_tok):
    fmt = chat_format_for_tokenizer(tiny_tok, "tulu")
    msgs = [{"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]
    enc = encode_conversation(tiny_tok, fmt, msgs, 2048)
    assert show_encoded(tiny_tok, enc) == "<s><|user|>\nSay hi\n<|assistant|>\n[[hi</s>]]"
    report = inspect_report(tiny_tok, enc)
    assert report.splitlines()[0] == (f"id=- tokens={len(enc)} trained={enc.n_trained} trained_eos=1 "
                                      "starts_with_bos=True truncated=False")
