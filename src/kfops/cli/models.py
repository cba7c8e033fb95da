"""`kfops models` (registry versions, aliases, lineage) and `kfops runs` (local run history)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from kfops.config import Settings


def register(sub: Any) -> None:
    models = sub.add_parser("models", help="list registered models, or show one version")
    models.add_argument("model", nargs="?", help="model name")
    models.add_argument("ref", nargs="?", help="version (v3) or alias (champion) to show")
    models.add_argument("--registry", help="registry root (env KFOPS_REGISTRY_ROOT)")
    models.add_argument("--verify", action="store_true", help="recheck every file's sha256")
    models.set_defaults(func=cmd_models)

    runs = sub.add_parser("runs", help="local run history, parameters and metrics side by side")
    runs.add_argument("run_id", nargs="?", help="show one run in full")
    runs.add_argument("--registry", help="registry root (env KFOPS_REGISTRY_ROOT)")
    runs.add_argument(
        "--limit", type=int, default=20, help="newest runs to list (default %(default)s)"
    )
    runs.set_defaults(func=cmd_runs)


def cmd_models(args: argparse.Namespace) -> int:
    from kfops.errors import RegistryError
    from kfops.registry import Registry

    registry = Registry(Settings.from_env(registry_root=args.registry).registry_root)
    if args.model is None:
        names = registry.models()
        if not names:
            print(f"no models in {registry.root}")
        for name in names:
            shown = ", ".join(f"{a}->{v}" for a, v in sorted(registry.aliases(name).items()))
            print(f"{name}: {len(registry.versions(name))} versions; aliases: {shown or '-'}")
        return 0
    if args.model not in registry.models():
        known = ", ".join(registry.models()) or "none"
        raise RegistryError(f"unknown model {args.model!r} in {registry.root}; known: {known}")
    if args.ref is None:
        aliases = registry.aliases(args.model)
        by_version: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            by_version.setdefault(version, []).append(alias)
        print(f"{'version':8} {'created':26} {'aliases':22} {'run':30} metrics")
        for mv in registry.versions(args.model):
            lineage = mv.lineage
            metrics = lineage.get("metrics") or {}
            shown = ", ".join(f"{k}={v:.3f}" for k, v in sorted(metrics.items())[:3])
            print(
                f"{mv.version:8} {lineage.get('created_at', '')!s:26} "
                f"{','.join(sorted(by_version.get(mv.version, []))):22} "
                f"{lineage.get('run_id', '')!s:30} {shown}"
            )
        return 0
    mv = (
        registry.verify(args.model, args.ref)
        if args.verify
        else registry.resolve(args.model, args.ref)
    )
    if args.verify:
        from kfops.signing import configured_verifier

        # registry.verify above checked the signature too when a verify key is configured.
        verifier = configured_verifier()
        signed = f", signed by key {verifier.key_id}" if verifier else " (no signature check)"
        print(f"verified: every file of {args.model} {mv.version} matches MANIFEST.json{signed}")
    print(
        json.dumps(
            {"path": str(mv.path), "lineage": mv.lineage, "manifest": mv.manifest},
            indent=2,
            sort_keys=True,
            default=str,
        )
    )
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from kfops import tracking

    root = Settings.from_env(registry_root=args.registry).registry_root
    if args.run_id:
        record = tracking.load_run(root, args.run_id)
        print(json.dumps(record.to_dict(), indent=2, sort_keys=True, default=str))
        return 0
    print(tracking.compare_table(tracking.list_runs(root, limit=args.limit)))
    return 0
