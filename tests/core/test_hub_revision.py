"""Hub names pinned to a revision (ORG/NAME@REVISION) reach every loader as ``revision=``."""

from __future__ import annotations

import pytest

from camels.core.errors import ConfigError
from camels.core.io import hub_revision, load_pretrained


def test_hub_revision_splits_a_pinned_name_and_leaves_others_whole(tmp_path):
    assert hub_revision("allenai/tulu-7b@3f1c2e9") == ("allenai/tulu-7b", "3f1c2e9")
    assert hub_revision("meta-llama/Llama-2-7b-hf@main") == ("meta-llama/Llama-2-7b-hf", "main")
    assert hub_revision("allenai/tulu-7b") == ("allenai/tulu-7b", None)
    folder = tmp_path / "model@v2"  # a local folder whose name holds "@" is a folder
    folder.mkdir()
    assert hub_revision(folder) == (str(folder), None)
    for bad in ("@abc", "org/name@", "a@b@c"):
        with pytest.raises(ConfigError, match="ORG/NAME@REVISION"):
            hub_revision(bad)


class _Recorder:
    calls: list[tuple[str, dict]] = []

    @classmethod
    def from_pretrained(cls, name, **kwargs):
        cls.calls.append((name, kwargs))
        return "loaded"


def test_load_pretrained_passes_the_revision_only_when_pinned():
    _Recorder.calls = []
    assert load_pretrained(_Recorder, "org/name@abc123", dtype="x") == "loaded"
    load_pretrained(_Recorder, "org/name")
    assert _Recorder.calls == [("org/name", {"dtype": "x", "revision": "abc123"}), ("org/name", {})]


def test_the_hf_backend_and_training_load_a_pinned_hub_model(monkeypatch):
    transformers = pytest.importorskip("transformers")
    from camels.tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_llama(tok, seed=0)
    seen = []

    def fake(obj):
        def from_pretrained(name, **kwargs):
            seen.append((name, kwargs.get("revision")))
            return obj
        return staticmethod(from_pretrained)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake(model))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", fake(tok))
    from camels.backends.hf import HFBackend
    from camels.train.model import load_tokenizer

    backend = HFBackend("org/tiny@0123abc", device="cpu", chat_format="plain")
    assert seen == [("org/tiny", "0123abc"), ("org/tiny", "0123abc")]
    assert backend.model_name == "org/tiny@0123abc"
    seen.clear()
    load_tokenizer("org/tiny@v1.0")
    assert seen == [("org/tiny", "v1.0")]
