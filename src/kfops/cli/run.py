"""`kfops` sub-commands: run (placeholder until its issue lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    """Add this module's sub-commands to the `kfops` parser."""
    del sub


def _unused(args: argparse.Namespace) -> int:  # pragma: no cover
    return 0
