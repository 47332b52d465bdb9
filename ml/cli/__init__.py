"""``python -m ml <command>``: one sub-module of ml.cli per command.

Each sub-module defines ``add_parser(subparsers)``, which registers its
sub-command and sets ``func`` (taking the parsed args, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ml.errors import MarrowFindMLError

COMMANDS = ("predict", "segment", "train", "train-cells", "train-wbc-mask", "evaluate", "gan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ml", description="Marrow-Find ML tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"ml.cli.{name.replace('-', '_')}")
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except MarrowFindMLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
