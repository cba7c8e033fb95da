"""Flags that mean the same thing in every sub-command, and the old spellings they replace.

One name per concept:

- ``--model NAME``: a model's name in the registry (run, serve, monitor, deploy ...).
- ``--version VERSION_OR_ALIAS``: one version of it, ``v3``, or an alias, ``champion``.
- ``--registry DIR``: the registry root (KFOPS_REGISTRY_ROOT).

Old spellings keep working for a while: ``deprecated`` adds them hidden from ``--help``, and
using one prints a one-line notice on stderr naming the new flag.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from kfops.registry import CHAMPION

MODEL_HELP = "model name in the registry"
VERSION_HELP = "version (v3) or alias (champion)"
REGISTRY_HELP = "registry root (env KFOPS_REGISTRY_ROOT, default ./.kfops/registry)"


class _Deprecated(argparse.Action):
    """Stores like the new flag, after a notice naming it."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str, **kwargs: Any):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        notice(f"{option_string} is deprecated; use {self.new}")
        setattr(namespace, self.dest, values)


def notice(text: str) -> None:
    print(f"notice: {text}", file=sys.stderr, flush=True)


def deprecated(parser: Any, old: str, new: str, dest: str) -> None:
    """Accept ``old`` as a hidden spelling of the flag ``new`` (stored in ``dest``)."""
    parser.add_argument(
        old,
        dest=dest,
        action=_Deprecated,
        new=new,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )


def add_registry(parser: Any) -> None:
    parser.add_argument("--registry", default=None, metavar="DIR", help=REGISTRY_HELP)


def add_model(parser: Any, help: str = MODEL_HELP, old: Sequence[str] = ()) -> None:
    """``--model NAME`` (dest ``model``), with hidden old spellings."""
    parser.add_argument("--model", default=None, metavar="NAME", help=help)
    for spelling in old:
        deprecated(parser, spelling, "--model", "model")


def add_version(parser: Any, help: str | None = None, old: Sequence[str] = ()) -> None:
    """``--version VERSION_OR_ALIAS`` (dest ``version``, default champion)."""
    parser.add_argument(
        "--version",
        default=CHAMPION,
        metavar="VERSION_OR_ALIAS",
        help=help or f"{VERSION_HELP} to use (default: {CHAMPION})",
    )
    for spelling in old:
        deprecated(parser, spelling, "--version", "version")
