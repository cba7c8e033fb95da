"""What the retraining trigger remembers, bounded, and which models it may act on.

- ``AlertLedger``: alert keys already acted on (de-duplication). Keys expire ``ttl`` seconds
  after they were marked; they are kept in an OrderedDict in marking order, so expiry pops from
  the front and costs only the expired keys (no rescan per decision). At most ``max_keys`` are
  kept: past the cap the oldest go first and each eviction is counted (a metric), so a storm of
  distinct alerts costs bounded memory and at worst lets an old alert be re-evaluated (the
  per-model cooldown still holds).
- ``StateStore``: that ledger and the per-model cooldown state in one JSON file next to the
  registry (``<registry_root>/../trigger/state.json`` by default), written atomically
  (kfops.io.write_json_atomic), so a restarted trigger keeps its cooldowns and de-duplication.
- ``ModelCatalog``: the models a webhook may name: those in the registry (locally, and on a
  cluster where the trigger mounts the registry read-only), or an explicit allowlist
  (``KFOPS_TRIGGER_MODELS``, for Kubeflow setups where the trigger cannot read the registry).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from kfops.errors import ConfigError, KfopsError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
STATE_VERSION = 1
DEFAULT_MAX_KEYS = 50_000
CATALOG_TTL = 5.0  # seconds a registry listing is reused (a storm lists the registry once)


def alert_key(fingerprint: str, starts_at: str) -> str:
    """A fixed-size key for one alert instance: client-chosen strings cost no more than 32
    characters of memory each, however long they are."""
    raw = f"{fingerprint}\x00{starts_at}".encode("utf-8", "replace")
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


class AlertLedger:
    """Alert keys acted on, expiring in marking order, capped at ``max_keys``."""

    def __init__(
        self,
        ttl: float,
        max_keys: int = DEFAULT_MAX_KEYS,
        on_evict: Callable[[int], None] | None = None,
    ) -> None:
        if max_keys < 1:
            raise ConfigError(f"max_keys must be at least 1, got {max_keys}")
        self.ttl = ttl
        self.max_keys = max_keys
        self.on_evict = on_evict
        self._keys: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def expire(self, now: float) -> int:
        """Drop keys older than ``ttl``; the oldest are first, so this stops at the first
        live key. Returns how many were dropped."""
        dropped = 0
        keys = self._keys
        while keys:
            key, marked = next(iter(keys.items()))
            if now - marked <= self.ttl:
                break
            del keys[key]
            dropped += 1
        return dropped

    def mark(self, keys: Iterable[str], now: float) -> None:
        for key in keys:
            if key in self._keys:
                self._keys.move_to_end(key)
            self._keys[key] = now
        evicted = 0
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
            evicted += 1
        if evicted and self.on_evict is not None:
            self.on_evict(evicted)

    def forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._keys.pop(key, None)

    def items(self) -> list[tuple[str, float]]:
        return list(self._keys.items())

    def restore(self, items: Iterable[Any], now: float) -> None:
        """Reload saved (key, time) pairs, oldest first, skipping expired or malformed ones."""
        good = []
        for item in items:
            if (
                isinstance(item, list | tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and len(item[0]) <= 64
                and isinstance(item[1], int | float)
                and now - float(item[1]) <= self.ttl
            ):
                good.append((item[0], float(item[1])))
        good.sort(key=lambda kv: kv[1])
        self._keys.clear()
        for key, marked in good[-self.max_keys :]:
            self._keys[key] = marked


class StateStore:
    """The trigger's state file, written atomically; a failure to write is logged and counted,
    never fatal (the trigger keeps working from memory)."""

    def __init__(self, directory: str | Path) -> None:
        self.path = Path(directory) / STATE_FILE
        self._lock = threading.Lock()

    def load(self) -> dict[str, Any] | None:
        from kfops.io import read_json

        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("trigger state %s is unreadable (%s): starting with empty state",
                      self.path, exc)  # fmt: skip
            return None
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            log.error("trigger state %s has an unknown format: starting with empty state",
                      self.path)  # fmt: skip
            return None
        return data

    def save(self, data: dict[str, Any]) -> bool:
        from kfops.io import write_json_atomic

        with self._lock:  # two writers would race on the rename order
            try:
                write_json_atomic(self.path, {**data, "version": STATE_VERSION})
            except OSError as exc:
                log.error("cannot write trigger state %s: %s", self.path, exc)
                return False
        return True


class ModelCatalog:
    """Which model names a webhook may act on: an explicit allowlist, else the registry's
    models (listed at most every ``CATALOG_TTL`` seconds)."""

    def __init__(
        self,
        registry_root: str | Path | None,
        allowlist: Iterable[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from kfops.registry import validate_model_name

        self.registry_root = Path(registry_root) if registry_root is not None else None
        self.allowlist: frozenset[str] | None = None
        if allowlist is not None:
            names = [n.strip() for n in allowlist if n.strip()]
            try:
                self.allowlist = frozenset(validate_model_name(n) for n in names)
            except KfopsError as exc:
                raise ConfigError(f"KFOPS_TRIGGER_MODELS: {exc}") from None
        self.clock = clock
        self._cached: tuple[float, frozenset[str]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, registry_root: str | Path | None, allowlist: str | None) -> ModelCatalog:
        names = allowlist.split(",") if allowlist and allowlist.strip() else None
        return cls(registry_root, names)

    def describe(self) -> str:
        if self.allowlist is not None:
            return f"allowlist {', '.join(sorted(self.allowlist)) or '(empty)'}"
        return f"models in the registry {self.registry_root}"

    def known(self) -> frozenset[str]:
        if self.allowlist is not None:
            return self.allowlist
        with self._lock:
            now = self.clock()
            if self._cached is not None and now - self._cached[0] < CATALOG_TTL:
                return self._cached[1]
            names: frozenset[str] = frozenset()
            if self.registry_root is not None:
                from kfops.registry import Registry

                try:
                    names = frozenset(Registry(self.registry_root).models())
                except OSError as exc:
                    log.error("cannot list the registry %s: %s", self.registry_root, exc)
            self._cached = (now, names)
            return names
