"""Classifier judges: a Hugging Face sequence classifier loaded by name, batched on the device.

:class:`HFClassifier` is the scorer of :class:`~camels.judge.kinds.ClassifyRequest`: texts are sorted by
length and run in batches of ``batch_size`` (padding to the longest of the batch, truncation at
``max_length`` tokens: 512 for RoBERTa), and each gets the softmax over the classes. The decision for the
positive class (ToxiGen: class 1, toxic) is the classifier's most probable class, the rule of the study.

Its identity: backend ``hf_classifier``, the model name, and a fingerprint of the weights (file hashes
of a local folder or hub snapshot, else the tensors themselves), the tokenizer and the classifier config
(prompt file name, version and hash). torch and transformers are imported only when one is built.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camels.core.io import hub_revision
from camels.core.requests import BackendInfo
from camels.judge.identity import JudgeIdentity
from camels.judge.kinds import ClassifyRequest, ClassifyResult
from camels.judge.prompts import JudgePrompt


class HFClassifier:
    """Scorer of ``classify`` requests (see the module doc)."""

    name = "hf_classifier"

    def __init__(self, model: Any, prompt: JudgePrompt, *, tokenizer: Any = None, device: str = "cpu",
                 batch_size: int = 32, max_length: int = 512, revision: str | None = None) -> None:
        import torch

        from camels.backends.hf import _tokenizer_digest, _weights_digest_files, _weights_digest_state

        if prompt.kind != "classifier":
            raise ValueError(f"judge prompt {prompt.name} is a {prompt.kind} prompt, not a classifier")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.prompt = prompt
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = torch.device(device)
        if isinstance(model, (str, os.PathLike)):
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            name = str(model)
            repo, pinned = hub_revision(name)
            if revision is not None and pinned is not None and revision != pinned:
                raise ValueError(f"{name}: revision {revision!r} given as well as {pinned!r} in the name")
            revision = revision or pinned
            self.model = AutoModelForSequenceClassification.from_pretrained(repo, revision=revision)
            self.tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(repo,
                                                                                                revision=revision)
            folder = Path(name) if Path(name).is_dir() else None
            weights = _weights_digest_files(folder) if folder else _weights_digest_state(self.model)
        else:
            if tokenizer is None:
                raise ValueError("an in-memory classifier needs its tokenizer (tokenizer=...)")
            name = getattr(model.config, "name_or_path", "") or type(model).__name__
            self.model, self.tokenizer = model, tokenizer
            weights = _weights_digest_state(model)
        if isinstance(self.tokenizer, (str, os.PathLike)):
            from transformers import AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(str(self.tokenizer))
        self.model.to(self.device).eval()
        n = int(self.model.config.num_labels)
        if not 0 <= prompt.positive_label < n:
            raise ValueError(f"{name}: positive_label {prompt.positive_label} but the classifier has {n} classes")
        id2label = getattr(self.model.config, "id2label", None) or {}
        self.labels = tuple(str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(n))
        blob = json.dumps({"weights": weights, "tokenizer": _tokenizer_digest(self.tokenizer),
                           "max_length": max_length}, sort_keys=True)
        self.identity = JudgeIdentity(backend=self.name, model=name,
                                      revision=hashlib.sha256(blob.encode()).hexdigest(), prompt=prompt.name,
                                      prompt_version=str(prompt.version), prompt_sha256=prompt.sha256)
        self._judge = self.identity.to_dict()

    @property
    def info(self) -> BackendInfo:
        return BackendInfo(name=self.name, model=self.identity.model, fingerprint=self.identity.fingerprint,
                           details={"judge": self._judge, "device": str(self.device)})

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Softmax class probabilities of each text, in order (batched by length)."""
        import torch

        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[list[float]] = [[] for _ in texts]
        with torch.no_grad():
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                logits = self.model(**enc).logits.float()
                for i, row in zip(idx, torch.softmax(logits, dim=-1).tolist()):
                    out[i] = row
        return out

    def classify(self, requests: Sequence[ClassifyRequest]) -> list[ClassifyResult]:
        pos = self.prompt.positive_label
        results = []
        for probs in self.probabilities([r.text for r in requests]):
            top = max(range(len(probs)), key=probs.__getitem__)  # first of equals, like argmax
            results.append(ClassifyResult(labels=self.labels, probs=tuple(probs), positive=top == pos,
                                          p_positive=probs[pos], judge=self._judge))
        return results
