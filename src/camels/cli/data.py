"""``camels data ...``: convert, mix, decontaminate, stats.

The subcommands live in their own modules (``data_convert`` and ``data_ops``) and each adds its parser to
the ``data`` group here.
"""

from __future__ import annotations

import argparse
import importlib

SUBCOMMAND_MODULES = ("camels.cli.data_convert", "camels.cli.data_ops")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="convert, mix, decontaminate and describe instruction datasets")
    group = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p.set_defaults(func=lambda args: p.print_help() or 2)
    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:
                continue
            raise
        module.register(group)
