"""What several benchmark scripts share: where the real files are, and the random model the eval benchmarks time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def realdata_root() -> Path:
    """``$CAMELS_REALDATA``, else ``../shared/realdata`` beside the project."""
    return Path(os.environ.get("CAMELS_REALDATA", ROOT.parent / "shared" / "realdata"))


def realdata(*parts: str, what: str) -> Path:
    """A file or folder below the real-data root; exits with one line naming it when it is absent."""
    path = realdata_root().joinpath(*parts)
    if not path.exists():
        sys.exit(f"{what} not found at {path} (set CAMELS_REALDATA)")
    return path


def build_eval_model(folder: Path) -> int:
    """Save a ~1M-parameter random LLaMA (4 layers, width 128, grouped-query attention) and the tiny
    tokenizer to ``folder``; return the parameter count."""
    from camels.tiny import tiny_llama, tiny_tokenizer

    tok = tiny_tokenizer()
    model = tiny_llama(tok, seed=0, hidden_size=128, intermediate_size=384, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())
