"""The ``fastoptim`` command line: ``fastoptim bench``, ``fastoptim info`` (and more).

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; the module is imported only when its subcommand runs, so
``fastoptim --help`` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

from . import __version__

# subcommand -> (module, one-line help)
SUBCOMMANDS = {
    "bench": ("fastoptim.bench", "throughput of every kernel: ns/element, GB/s vs the measured memory bandwidth, speed-up over naive NumPy"),
    "info": ("fastoptim._config", "print the backends, CPU features and threads"),
    "train": ("fastoptim.train.command", "train the course's network with each optimizer"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fastoptim", description="Fused in-place optimizer steps for NumPy arrays.")
    parser.add_argument("--version", action="version", version=f"fastoptim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
