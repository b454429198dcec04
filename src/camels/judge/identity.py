"""Who judged: the identity every annotation records, and the rule that identities are never mixed.

A judge's verdicts mean something only for one judge: the same outputs judged by GPT-4 and by a 7B model,
or with two versions of a prompt, are different measurements. So every annotation carries a
:class:`JudgeIdentity` (backend, model name and revision or the server's fingerprint, prompt name and
version, decoding parameters), and :func:`require_one_identity` refuses to compute a win rate or a share
over annotations of two identities, with an error that names both.

Annotations written by the alpaca_eval package carry only an ``annotator`` name (``alpaca_eval_gpt4``);
their identity is that name (:meth:`JudgeIdentity.from_annotator`).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from camels.core.errors import CamelsError


class MixedJudgeError(CamelsError):
    """Annotations by two different judges (model, revision, prompt or decoding) were about to be mixed."""


@dataclass(frozen=True, slots=True)
class JudgeIdentity:
    """What makes two verdicts comparable.

    * ``backend``: ``api``, ``hf``, ``vllm``, ``hf_classifier`` ... (``alpaca_eval`` for files of that tool);
    * ``model``: the judge model's name as configured (or the alpaca_eval annotator name);
    * ``revision``: the model's revision or content fingerprint, or for an API the backend fingerprint
      (URL, model name, endpoint); empty when unknown;
    * ``prompt`` / ``prompt_version`` / ``prompt_sha256``: the judge prompt file's name, version and the
      hash of its text (configs/judges/);
    * ``decoding``: decoding parameters (temperature, max_tokens ...), sorted.
    """

    backend: str
    model: str
    revision: str = ""
    prompt: str = ""
    prompt_version: str = ""
    prompt_sha256: str = ""
    decoding: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        dec = self.decoding.items() if isinstance(self.decoding, Mapping) else self.decoding
        object.__setattr__(self, "decoding", tuple(sorted((str(k), v) for k, v in dec)))

    @classmethod
    def from_annotator(cls, annotator: str) -> JudgeIdentity:
        """The identity of an alpaca_eval annotation, known only by its annotator config name."""
        return cls(backend="alpaca_eval", model=str(annotator))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JudgeIdentity:
        return cls(backend=str(d["backend"]), model=str(d["model"]), revision=str(d.get("revision", "")),
                   prompt=str(d.get("prompt", "")), prompt_version=str(d.get("prompt_version", "")),
                   prompt_sha256=str(d.get("prompt_sha256", "")),
                   decoding=tuple((k, v) for k, v in dict(d.get("decoding") or {}).items()))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["decoding"] = dict(self.decoding)
        return d

    @property
    def fingerprint(self) -> str:
        """sha256 of the canonical JSON of the identity (part of every judge request's cache key)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    @property
    def annotator(self) -> str:
        """A short name for alpaca_eval's ``annotator`` column: ``prompt@version`` or the model."""
        if self.backend == "alpaca_eval":
            return self.model
        return f"{self.prompt}@{self.prompt_version}" if self.prompt else self.model

    def describe(self) -> str:
        """One line naming everything that differs between judges."""
        if self.backend == "alpaca_eval":
            return f"alpaca_eval annotator {self.model!r}"
        parts = [f"{self.backend}:{self.model}"]
        if self.revision:
            parts.append(f"revision {self.revision[:12]}")
        if self.prompt:
            parts.append(f"prompt {self.prompt} v{self.prompt_version}"
                         + (f" (sha256 {self.prompt_sha256[:8]})" if self.prompt_sha256 else ""))
        if self.decoding:
            parts.append(" ".join(f"{k}={v}" for k, v in self.decoding))
        return ", ".join(parts)


def require_one_identity(identities: Iterable[JudgeIdentity], what: str = "annotations") -> JudgeIdentity:
    """The one identity of ``identities``; :class:`MixedJudgeError` naming the two most common when they differ.

    >>> a = JudgeIdentity("api", "gpt-4", prompt="p", prompt_version="1")
    >>> require_one_identity([a, a]) == a
    True
    """
    counts = Counter(identities)
    if not counts:
        raise MixedJudgeError(f"{what}: no annotations")
    if len(counts) > 1:
        (first, n1), (second, n2) = counts.most_common(2)
        more = f" (and {len(counts) - 2} more judges)" if len(counts) > 2 else ""
        raise MixedJudgeError(
            f"{what} come from different judges, refusing to mix them: {n1} by [{first.describe()}] and "
            f"{n2} by [{second.describe()}]{more}; judge everything again with one judge, or keep them apart")
    return next(iter(counts))
