"""Tiny models and tokenizers built offline, for the demo, the tests and the benchmarks.

Nothing here touches a hub: the tokenizer is a byte-level BPE trained in a few milliseconds on built-in
text (so it can encode any string), and the model is a randomly initialised LLaMA with a fixed seed.
Real users load models by name (``transformers.AutoModelForCausalLM.from_pretrained("allenai/tulu-...")``);
this module exists so that every code path can run on a laptop CPU in seconds.

>>> tok = tiny_tokenizer()
>>> tok.convert_ids_to_tokens(tok("hi")["input_ids"])[0]   # adds BOS like LLaMA's tokenizer
'<s>'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")

# Training text for the tokenizer: chat markers, digits, some English, some code; enough for short merges.
_CORPUS = [
    "<|system|>\n<|user|>\n<|assistant|>\n",
    "The following are multiple choice questions (with answers) about abstract algebra.",
    "Question: What is 12 plus 30? Answer: 12 + 30 = 42. The answer is 42.",
    "Answer the following questions. The answer is: A. B. C. D.",
    "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n",
    "Write a short poem about the sea. The sea is wide and blue, and it shines in the sun.",
    "Give three tips for staying healthy. 1. Eat well. 2. Sleep enough. 3. Move every day.",
    "Translate to French: good morning -> bonjour. Summarize the text. Input: Output: Response:",
    "### Instruction:\n### Input:\n### Response:\n",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 the of and to in is that it for you was with on as",
]


def _train_backend(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    bos = tok.token_to_id("<s>")
    # Like LLaMA: BOS in front of a single text when add_special_tokens=True; byte offsets kept.
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]),
        ]
    )
    return tok


def tiny_tokenizer(vocab_size: int = 512, chat_template: str | None = None):
    """A ``PreTrainedTokenizerFast`` with BOS ``<s>``, EOS ``</s>``, PAD ``<pad>`` (pad != eos)."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=_train_backend(vocab_size),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=4096,
    )
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def tiny_llama_config(vocab_size: int, **overrides: Any):
    from transformers import LlamaConfig

    cfg: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=3,
    )
    cfg.update(overrides)
    return LlamaConfig(**cfg)


def tiny_llama(tokenizer=None, seed: int = 0, **overrides: Any):
    """A 2-layer LLaMA with random weights drawn from ``seed`` (about 100k parameters)."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = tokenizer if tokenizer is not None else tiny_tokenizer()
    config = tiny_llama_config(
        len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **overrides,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.eval()
    return model


def save_tiny_model(path: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Write a tiny model + tokenizer folder that ``from_pretrained(path)`` loads, like a hub model."""
    path = Path(path)
    tok = tiny_tokenizer()
    model = tiny_llama(tok, seed=seed, **overrides)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path
