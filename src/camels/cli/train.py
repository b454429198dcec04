"""``camels train CONFIG.yaml [key=value ...]`` and ``camels train inspect DATA.jsonl --tokenizer ...``.

Torch, transformers and the training modules are imported inside the command functions: building the
parser (``camels --help``) must stay light.
"""

from __future__ import annotations

import argparse
import sys

from camels.train.config import recipe_path  # noqa: F401 (also imported from here)

INSPECT_USAGE = "camels train inspect DATA.jsonl --tokenizer PATH [--n 1] [--format tulu] [--max-length 2048]"
MERGE_USAGE = "camels train merge ADAPTER_DIR -o OUT [--base MODEL] [--dtype auto] [--format tulu]"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="finetune a model on unified conversations (or: train inspect, to see what is trained)",
        description=(
            "Finetune with the Tülu recipe or any config: camels train configs/train/tiny-cpu.yaml "
            "output_dir=runs/demo lora.enabled=true. Values after the config override its keys "
            "(nested keys with dots). Use 'camels train inspect DATA.jsonl --tokenizer PATH' to print "
            "encoded conversations with the trained tokens in [[brackets]], and 'camels train merge ADAPTER_DIR "
            "-o OUT' to fold a LoRA adapter into its base model."
        ),
        epilog=f"inspect usage: {INSPECT_USAGE} -- merge usage: {MERGE_USAGE}",
    )
    p.add_argument("config", help="training config YAML or a shipped recipe name (tulu-v1, tulu-v1-lora, "
                   "tulu-v1-qlora, tiny-cpu), or the word 'inspect' or 'merge'")
    p.add_argument("overrides", nargs=argparse.REMAINDER, help="key=value overrides, e.g. learning_rate=1e-5")
    p.set_defaults(func=_dispatch)


def _dispatch(args: argparse.Namespace) -> int:
    if args.config == "inspect":
        return _inspect(_inspect_parser().parse_args(args.overrides))
    if args.config == "merge":
        return _merge(_merge_parser().parse_args(args.overrides))
    return _train(args.config, args.overrides)


def _inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="camels train inspect", usage=INSPECT_USAGE,
                                description="Show encoded conversations with trained tokens made visible.")
    p.add_argument("data", help="unified conversation JSONL")
    p.add_argument("--tokenizer", required=True, help="tokenizer folder or name")
    p.add_argument("--n", type=int, default=1, help="number of conversations to show (default 1)")
    p.add_argument("--format", default="tulu", help="chat format: tulu, auto, hf_template, plain")
    p.add_argument("--max-length", type=int, default=2048, help="truncation length (default 2048)")
    p.add_argument("--color", action="store_true", help="colour trained tokens instead of [[brackets]]")
    return p


def _inspect(args: argparse.Namespace) -> int:
    from collections import Counter

    from transformers import AutoTokenizer

    from camels.core.io import load_pretrained
    from camels.core.template import chat_format_for_tokenizer
    from camels.train.encode import Dropped, encode_conversation, inspect_report, iter_conversations

    tok = load_pretrained(AutoTokenizer, args.tokenizer)
    fmt = chat_format_for_tokenizer(tok, args.format)
    dropped: Counter = Counter()
    shown = 0
    print(f"chat format: {fmt!r}  (trained tokens {'coloured' if args.color else 'in [[brackets]]'})")
    for conv in iter_conversations([args.data], dropped):
        try:
            enc = encode_conversation(tok, fmt, conv.messages, args.max_length, id=conv.id)
        except Dropped as d:
            dropped[d.reason] += 1
            continue
        print("-" * 80)
        print(inspect_report(tok, enc, color=args.color))
        shown += 1
        if shown >= args.n:
            break
    if dropped:
        print(f"dropped before the ones shown: {dict(dropped)}", file=sys.stderr)
    return 0 if shown else 1


def _merge_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="camels train merge", usage=MERGE_USAGE,
                                description="Fold a LoRA adapter into its base model and write a Hugging Face "
                                "folder (tokenizer and chat template included).")
    p.add_argument("adapter", help="adapter folder (adapter_config.json), e.g. RUN/checkpoints/step-N/adapter")
    p.add_argument("-o", "--out", required=True, help="output folder for the merged model")
    p.add_argument("--base", default=None, help="base model folder or name (default: the one the adapter records)")
    p.add_argument("--dtype", default="auto", help="dtype of the merged weights: auto, bf16, fp16, fp32")
    p.add_argument("--format", default=None,
                   help="chat format when no chat_format.json sits next to the adapter (default tulu)")
    return p


def _merge(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from camels.core.template import chat_format_for_tokenizer, chat_format_from_dict
    from camels.train.export import write_model_folder
    from camels.train.model import load_tokenizer, merge_lora

    adapter = Path(args.adapter)
    model = merge_lora(adapter, base=args.base, dtype=args.dtype)
    base = args.base or model.config.name_or_path
    # The chat contract: the checkpoint's (adapter/ sits inside checkpoints/step-N), else built for the tokenizer.
    contract = next((p for p in (adapter / "chat_format.json", adapter.parent / "chat_format.json")
                     if p.is_file()), None)
    tok_source = adapter if (adapter / "tokenizer_config.json").is_file() else base
    tokenizer = load_tokenizer(str(tok_source))
    if contract is not None and args.format is None:
        fmt = chat_format_from_dict(json.loads(contract.read_text(encoding="utf-8")))
    else:
        fmt = chat_format_for_tokenizer(tokenizer, args.format or "tulu")
    out = write_model_folder(model, tokenizer, args.out, chat_format=fmt,
                             config_dict={"merged_from": str(adapter), "base": str(base)})
    print(f"merged {adapter} into {base} -> {out}")
    return 0


def _train(config: str, overrides: list[str]) -> int:
    from camels.train.config import TrainConfig

    cfg = TrainConfig.load(recipe_path(config), overrides)
    from camels.train.loop import train

    result = train(cfg)
    from accelerate import PartialState

    if PartialState().is_main_process:  # under `accelerate launch`, one summary line, not one per process
        print(f"final_loss={result.final_loss:.4f} steps={result.steps} trained_tokens={result.trained_tokens} "
              f"output_dir={result.output_dir} final_model={result.final_model}")
    return 0
