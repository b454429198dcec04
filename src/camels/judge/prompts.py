"""Judge prompts: versioned YAML files shipped in ``camels/configs/judges/`` (or any path).

A prompt file says what a judge is asked and how its answer is read::

    name: alpaca_eval_gpt4          # the file's stem
    version: 1                      # bump it whenever the text or the parsing changes
    kind: pairwise                  # pairwise | yesno | classifier
    model: gpt-4-0314               # the default judge model (a user may name another)
    decoding: {temperature: 0, max_tokens: 100}
    messages:                       # chat messages; {instruction}, {output_1}, {output_2} / {question}, {answer}
      - {role: system, content: "..."}
      - {role: user, content: "..."}
    parser: ranking                 # how a pairwise verdict is read (see camels.judge.parse)

Placeholders are replaced in one pass (a model output that itself contains ``{output_2}`` stays as it is).
The sha256 of the text parts of a prompt is part of the judge's identity, so an edited prompt file whose
version was not bumped still counts as another judge; the shipped files' hashes are pinned in the tests.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from camels.core import config as cfg
from camels.core.errors import ConfigError

JUDGES_DIR = Path(__file__).resolve().parents[1] / "configs" / "judges"
PLACEHOLDERS = {
    "pairwise": ("instruction", "output_1", "output_2"),
    "yesno": ("question", "answer"),
    "classifier": (),
}


@dataclass(frozen=True)
class PromptMessage:
    role: str = field(metadata={"help": "system, user or assistant"})
    content: str = field(metadata={"help": "the message text, with placeholders"})


@dataclass(frozen=True)
class JudgePrompt:
    """One versioned judge prompt (see the module doc for the file layout)."""

    name: str = field(metadata={"help": "the prompt's name (the file stem of a shipped prompt)"})
    version: int = field(metadata={"help": "bumped whenever the text or the parsing changes"})
    kind: Literal["pairwise", "yesno", "classifier"] = field(metadata={"help": "what the judge returns"})
    description: str = field(default="", metadata={"help": "what this judge is for"})
    source: str = field(default="", metadata={"help": "where the prompt and setup come from"})
    model: str = field(default="", metadata={"help": "default judge model name (hub name or API model)"})
    backend: str = field(default="api", metadata={"help": "default backend: api, hf, vllm or hf_classifier"})
    decoding: dict[str, int | float] = field(default_factory=dict, metadata={
        "help": "decoding of pairwise judges: temperature, max_tokens"})
    messages: list[PromptMessage] = field(default_factory=list, metadata={"help": "chat messages with placeholders"})
    parser: str = field(default="", metadata={"help": "pairwise verdict parser: ranking, identifier or logprob"})
    parser_options: dict[str, str] = field(default_factory=dict, metadata={
        "help": "parser options, e.g. identifier's first/second ids"})
    choices: list[str] = field(default_factory=list, metadata={
        "help": "yesno: the answer tokens read after the prompt, yes first (e.g. ' yes', ' no')"})
    threshold: float = field(default=0.5, metadata={"help": "yesno: P(yes) at or above which the answer is yes;"
                                                             " classifier: P(positive) at or above which"})
    positive_label: int = field(default=1, metadata={"help": "classifier: index of the positive class"})
    positive_name: str = field(default="positive", metadata={"help": "classifier: what the positive class means"})
    prices: dict[str, dict[str, float]] = field(default_factory=dict, metadata={
        "help": "USD per million tokens by model: {model: {prompt: .., completion: ..}}"})

    def __post_init__(self) -> None:
        where = f"judge prompt {self.name!r}"
        if self.kind in ("pairwise", "yesno"):
            if not self.messages or self.messages[-1].role != "user":
                raise ConfigError(f"{where}: messages must end with a user message")
            text = "".join(m.content for m in self.messages)
            for ph in PLACEHOLDERS[self.kind]:
                if "{" + ph + "}" not in text:
                    raise ConfigError(f"{where}: messages lack the placeholder {{{ph}}}")
        if self.kind == "pairwise" and self.parser not in ("ranking", "identifier", "logprob"):
            raise ConfigError(f"{where}: parser must be ranking, identifier or logprob, got {self.parser!r}")
        if self.kind == "pairwise" and self.parser in ("identifier", "logprob"):
            if not {"first", "second"} <= set(self.parser_options):
                raise ConfigError(f"{where}: the {self.parser} parser needs parser_options first and second")
        if self.kind == "yesno" and len(self.choices) != 2:
            raise ConfigError(f"{where}: a yes/no judge needs two choices (yes first), got {self.choices}")

    @property
    def sha256(self) -> str:
        """Hash of everything that shapes the verdicts except the model: messages, parser, choices."""
        blob = json.dumps({"kind": self.kind, "messages": [[m.role, m.content] for m in self.messages],
                           "parser": self.parser, "parser_options": self.parser_options,
                           "choices": self.choices, "threshold": self.threshold,
                           "positive_label": self.positive_label}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def render(self, **values: str) -> list[tuple[str, str]]:
        """The chat messages with placeholders filled (one pass; missing values are an error)."""
        names = PLACEHOLDERS[self.kind]
        missing = [n for n in names if n not in values]
        if missing:
            raise ValueError(f"judge prompt {self.name}: no value for {missing}")
        pattern = re.compile("|".join(re.escape("{" + n + "}") for n in names))
        return [(m.role, pattern.sub(lambda mt: str(values[mt.group(0)[1:-1]]), m.content)) for m in self.messages]

    def price(self, model: str) -> Mapping[str, float] | None:
        return self.prices.get(model)


def prompt_names() -> list[str]:
    """The shipped judge prompts."""
    return sorted(p.stem for p in JUDGES_DIR.glob("*.yaml"))


def load_prompt(name_or_path: str | Path, **overrides: Any) -> JudgePrompt:
    """A shipped prompt by name (``alpaca_eval_gpt4``) or a prompt file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        path = JUDGES_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown judge prompt {str(name_or_path)!r} (shipped: {', '.join(prompt_names())}; "
                              "or give a YAML file path)")
    return cfg.load(JudgePrompt, path, overrides)
