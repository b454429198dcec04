"""The ``camels`` command: a thin layer that parses arguments, calls the library and prints.

Each area registers its own subcommands from its own module (``camels.cli.data``, ``camels.cli.train``,
``camels.cli.eval`` ...), so the parser is assembled here without importing any heavy library: torch and
transformers are imported only inside the command that needs them, and ``camels --help`` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from camels import DISTRIBUTION, installed_version
from camels.core.errors import CamelsError, file_error

# Modules that define ``register(sub: argparse._SubParsersAction) -> None``; the order is the help order.
COMMAND_MODULES = (
    "camels.cli.data",
    "camels.cli.train",
    "camels.cli.eval",
    "camels.cli.judge",
    "camels.cli.pipeline",
    "camels.cli.demo",
    "camels.cli.annotate",
    "camels.cli.report",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camels",
        description="Open instruction datasets -> an instruction-tuned model, measured benchmark by benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {installed_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that area has no commands yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except CamelsError as e:
        print(f"camels: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # an input or folder the library did not wrap: still one line with the file
        print(f"camels: error: {file_error(e)}", file=sys.stderr)
        return 1
    except RecursionError:  # readers report too-deep JSON with its file and line; this is the last guard
        print("camels: error: input nested too deeply for Python to follow (a JSON value hundreds of levels "
              "deep?); check the inputs of this command", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("camels: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
