from __future__ import annotations

import json

import pytest

from camels.core.chat import Conversation, Message
from camels.core.errors import RecordError


def rec(messages, **kw):
    return {"dataset": "d", "id": "d:0", "messages": messages, **kw}


def test_roundtrip_strips_and_keeps_meta():
    c = Conversation.from_dict(
        rec([{"role": "system", "content": " be kind "}, {"role": "user", "content": "hi\n"},
             {"role": "assistant", "content": "\nhello"}], meta={"row": 3})
    )
    assert c.messages == (Message("system", "be kind"), Message("user", "hi"), Message("assistant", "hello"))
    assert c.rounds == 1
    line = c.to_json()
    assert json.loads(line) == {
        "dataset": "d", "id": "d:0", "meta": {"row": 3},
        "messages": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"},
                     {"role": "assistant", "content": "hello"}],
    }
    assert Conversation.from_dict(json.loads(line)) == c


@pytest.mark.parametrize(
    "obj, reason, field",
    [
        ([1, 2], "bad_type", None),
        ({"id": "x", "messages": []}, "missing_field", "dataset"),
        (rec("hello"), "bad_type", "messages"),
        (rec([]), "no_messages", "messages"),
        (rec([{"role": "bot", "content": "x"}]), "unknown_role", "messages[0].role"),
        (rec([{"role": "user"}]), "missing_field", "messages[0].content"),
        (rec([{"role": "user", "content": 5}]), "bad_type", "messages[0].content"),
        (rec([{"role": "user", "content": "  \n"}, {"role": "assistant", "content": "a"}]), "empty_content",
         "messages[0].content"),
        (rec([{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]), "bad_alternation",
         "messages[1].role"),
        (rec([{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}]), "bad_alternation",
         "messages[0].role"),
        (rec([{"role": "user", "content": "q"}, {"role": "system", "content": "s"}]), "misplaced_system",
         "messages[1].role"),
        (rec([{"role": "user", "content": "q"}]), "no_assistant", "messages"),
        (rec([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
              {"role": "user", "content": "q2"}]), "ends_with_user", "messages[2].role"),
    ],
)
def test_bad_records_name_reason_and_field(obj, reason, field):
    with pytest.raises(RecordError) as e:
        Conversation.from_dict(obj)
    assert e.value.reason == reason
    assert e.value.field == field


def test_error_message_names_file_line_field():
    with pytest.raises(RecordError) as e:
        Conversation.from_dict(rec([{"role": "bot", "content": "x"}]))
    err = e.value.located(file="in.jsonl", line=7)
    assert str(err) == "in.jsonl:7: messages[0].role: unknown role 'bot' (expected system, user or assistant)"


def test_prompt_only_allowed_when_asked():
    c = Conversation.build("i", "d", [("user", "q")] * 1 + [("assistant", "a"), ("user", "more")],
                           require_final_assistant=False)
    assert c.messages[-1].role == "user"
