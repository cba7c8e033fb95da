"""Local deployment: the registry alias ``champion``, which ``kfops serve`` follows."""

from __future__ import annotations

import os

from kfops.registry import CHAMPION, Registry


def promote_local(registry_root: str | os.PathLike[str], model: str, version: str) -> str:
    """Point the ``champion`` alias at ``version`` (what ``kfops serve`` follows). Returns it."""
    return Registry(registry_root).set_alias(model, CHAMPION, version).version


def rollback_local(registry_root: str | os.PathLike[str], model: str) -> str:
    """Point ``champion`` back at its previous version. Returns the version now served."""
    return Registry(registry_root).rollback(model, CHAMPION).version


# --- rendering ----------------------------------------------------------------------------------
