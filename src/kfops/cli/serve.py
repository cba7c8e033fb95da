"""`kfops serve` (local model server following the champion) and `kfops deploy ...`."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfops.cli import _flags
from kfops.config import Settings
from kfops.registry import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from kfops.deploy import DeployConfig


def register(sub: Any) -> None:
    """Add `serve` and `deploy` to the `kfops` parser."""
    from kfops.serving.server import add_serving_arguments

    serve = sub.add_parser(
        "serve",
        help="serve a registry model locally with KServe (follows the champion alias)",
        description="Serve a model version with the kfops KServe predictor. With an alias "
        "(default: champion) the server switches to the new version when the alias moves.",
    )
    _flags.add_model(
        serve,
        help="model name in the registry (default: KFOPS_MODEL_NAME or the only model in the "
        "registry)",
        old=["--name"],
    )
    _flags.add_version(
        serve,
        help=f"version or alias to serve (default: {CHAMPION}, followed as it moves)",
    )
    _flags.add_registry(serve)
    serve.add_argument(
        "--model-dir", default=None, help="serve this version directory instead of the registry"
    )
    add_serving_arguments(
        serve, capture_default="default: KFOPS_CAPTURE_DIR, else <registry>/capture"
    )
    serve.add_argument(
        "--no-capture",
        action="store_true",
        help="no payload capture (by default `kfops serve` captures where `kfops monitor` "
        "reads: KFOPS_CAPTURE_DIR, else <registry>/capture)",
    )
    serve.set_defaults(func=_serve)

    deploy = sub.add_parser("deploy", help="promote, roll back or deploy model versions")
    dsub = deploy.add_subparsers(dest="deploy_command", metavar="ACTION", required=True)
    common = argparse.ArgumentParser(add_help=False)
    _flags.add_registry(common)
    _flags.add_model(common, old=["--name"])
    cluster = argparse.ArgumentParser(add_help=False)
    cluster.add_argument(
        "--namespace", default=None, help="namespace (default: KFOPS_DEPLOY_NAMESPACE or kfops)"
    )
    cluster.add_argument("--image", default=None, help="predictor image (default: KFOPS_IMAGE)")
    cluster.add_argument(
        "--mode", default="Standard", help="KServe deployment mode: Standard or Knative"
    )
    cluster.add_argument(
        "--storage-root",
        default="pvc://kfops-registry",
        help="where the registry is on the cluster (pvc://, s3://, gs://)",
    )
    cluster.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the rollout (default %(default)s)",
    )

    p = dsub.add_parser("promote", parents=[common], help="point champion at a version (local)")
    p.add_argument("version", help=f"{_flags.VERSION_HELP} to make the champion")
    p.set_defaults(func=_promote)
    p = dsub.add_parser(
        "rollback",
        parents=[common, cluster],
        help="champion back to its previous version (or --cluster)",
    )
    p.add_argument("--cluster", action="store_true", help="roll back the InferenceService")
    p.set_defaults(func=_rollback)
    p = dsub.add_parser(
        "render", parents=[common, cluster], help="print the InferenceService for a version as JSON"
    )
    p.add_argument(
        "version", nargs="?", default=CHAMPION, help=f"{_flags.VERSION_HELP} (default champion)"
    )
    p.set_defaults(func=_render)
    p = dsub.add_parser(
        "apply",
        parents=[common, cluster],
        help="apply a version to the cluster (canary with --canary-percent)",
    )
    p.add_argument("version", help=f"{_flags.VERSION_HELP} to apply")
    p.add_argument(
        "--canary-percent",
        type=int,
        default=0,
        help="share of traffic for the new version as a canary (0: replace the current one)",
    )
    p.set_defaults(func=_apply)
    p = dsub.add_parser(
        "promote-canary", parents=[common, cluster], help="send all traffic to the canary"
    )
    p.set_defaults(func=_promote_canary)


def _settings(args: argparse.Namespace) -> tuple[Path, str]:
    from kfops.errors import ConfigError
    from kfops.registry import Registry

    settings = Settings.from_env(registry_root=args.registry)
    model = args.model or settings.model_name
    if model is None:
        models = Registry(settings.registry_root).models()
        if not models:
            raise ConfigError(
                f"registry {settings.registry_root} has no models yet: train one with `kfops run`"
            )
        if len(models) > 1:
            raise ConfigError(
                f"registry {settings.registry_root} has models {', '.join(models)}: "
                "pick one with --model"
            )
        model = models[0]
    return settings.registry_root, model


def _serve(args: argparse.Namespace) -> int:
    from kfops.serving.model import ModelSource
    from kfops.serving.server import serve

    if args.no_capture:
        args.capture_uri = None
    elif args.capture_uri is None:
        # Locally `kfops monitor` reads the capture directory of the settings: write there.
        args.capture_uri = str(Settings.from_env(registry_root=args.registry).capture_dir)

    if args.model_dir:
        source = ModelSource(model_dir=Path(args.model_dir))
        return serve(args, source, args.model or "model")
    _old_model_flag(args)
    root, model = _settings(args)
    return serve(args, ModelSource(registry_root=root, model=model, ref=args.version), model)


def _old_model_flag(args: argparse.Namespace) -> None:
    """`kfops serve --model v3` used to name the version: when --model names no model in the
    registry but looks like a version or alias, serve it as one (with a notice)."""
    from kfops.registry import Registry

    if args.model is None or args.version != CHAMPION:
        return
    if not re.fullmatch(rf"v\d+|{CHAMPION}|{CHALLENGER}", args.model):
        return
    root = Settings.from_env(registry_root=args.registry).registry_root
    if args.model in Registry(root).models():
        return
    _flags.notice(f"--model {args.model} now names a model; use --version {args.model}")
    args.version, args.model = args.model, None


def _cfg(args: argparse.Namespace, model: str) -> DeployConfig:
    from kfops.deploy import DeployConfig

    return DeployConfig(
        name=model,
        namespace=_namespace(args),
        image=args.image or Settings.from_env().image,
        mode=args.mode,
        storage_root=args.storage_root,
    )


def _namespace(args: argparse.Namespace) -> str:
    return str(args.namespace or Settings.from_env().deploy_namespace)


def _promote(args: argparse.Namespace) -> int:
    from kfops.deploy import promote_local

    root, model = _settings(args)
    print(f"{model}: champion -> {promote_local(root, model, args.version)}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from kfops import deploy

    root, model = _settings(args)
    if args.cluster:
        deployer = deploy.KServeDeployer(deploy.load_api_client(), namespace=_namespace(args))
        deployer.rollback(model, _cfg(args, model), model, timeout=args.timeout)
        print(f"{_namespace(args)}/{model}: rolled back")
        return 0
    print(f"{model}: champion -> {deploy.rollback_local(root, model)}")
    return 0


def _render(args: argparse.Namespace) -> int:
    from kfops.deploy import manifest_for

    root, model = _settings(args)
    json.dump(manifest_for(root, model, args.version, _cfg(args, model)), sys.stdout, indent=2)
    print()
    return 0


def _apply(args: argparse.Namespace) -> int:
    from kfops.deploy import deploy_version

    root, model = _settings(args)
    print(
        deploy_version(
            root,
            model,
            args.version,
            "cluster",
            _cfg(args, model),
            args.canary_percent,
            timeout=args.timeout,
        )
    )
    return 0


def _promote_canary(args: argparse.Namespace) -> int:
    from kfops import deploy

    _, model = _settings(args)
    deployer = deploy.KServeDeployer(deploy.load_api_client(), namespace=_namespace(args))
    deployer.promote(model, timeout=args.timeout)
    print(f"{_namespace(args)}/{model}: canary promoted")
    return 0
