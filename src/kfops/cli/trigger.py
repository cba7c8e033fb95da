"""`kfops trigger`: the retraining trigger service (Alertmanager webhook -> training run)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from kfops.config import Settings
from kfops.defaults import MONITORING_WINDOW_HOURS, RETRAIN_REFERENCE_SHARE
from kfops.errors import ConfigError
from kfops.trigger import DEFAULT_COOLDOWN, KubeflowLauncher, LocalLauncher, RetrainTrigger
from kfops.trigger.http import HttpLimits
from kfops.trigger.state import DEFAULT_MAX_KEYS


def register(sub: Any) -> None:
    """Add this module's sub-commands to the `kfops` parser."""
    p = sub.add_parser(
        "trigger",
        help="serve Alertmanager webhooks and start training runs",
        description=(
            "Receive Alertmanager webhooks on POST /alerts and start a training run per alerting "
            "model (label `model`): on Kubeflow when a KFP host is set (--kfp-host / "
            "KFOPS_KFP_HOST), else locally. De-duplicates alerts, keeps a cooldown and at most "
            "one run in flight per model; GET /metrics, /status, /healthz."
        ),
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other needs --webhook-token-file)",
    )
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 = any free)")
    p.add_argument(
        "--webhook-token-file",
        help="file holding the bearer token POST /alerts must carry (KFOPS_WEBHOOK_TOKEN_FILE)",
    )
    p.add_argument(
        "--state-dir",
        help="where de-duplication and cooldowns persist (KFOPS_TRIGGER_STATE_DIR; default "
        "<registry>/../trigger)",
    )
    p.add_argument(
        "--max-alert-keys",
        type=int,
        default=DEFAULT_MAX_KEYS,
        help="de-duplication memory cap; past it the oldest keys go first (default %(default)s)",
    )
    p.add_argument(
        "--request-timeout",
        type=float,
        default=HttpLimits.header_timeout,
        help="seconds a client has to send headers, and again the body (default %(default)s)",
    )
    p.add_argument(
        "--models",
        help="comma-separated models alerts may retrain (KFOPS_TRIGGER_MODELS; default: the "
        "models in the registry)",
    )
    p.add_argument("--registry", help="registry root (KFOPS_REGISTRY_ROOT)")
    p.add_argument(
        "--cooldown",
        type=float,
        help="seconds between two runs of the same model (KFOPS_TRIGGER_COOLDOWN, default 3600)",
    )
    p.add_argument(
        "--data-uri",
        help="train on this data (KFOPS_RETRAIN_DATA_URI; required with Kubeflow)",
    )
    p.add_argument("--capture-dir", help="payload capture root (KFOPS_CAPTURE_DIR)")
    p.add_argument(
        "--labels-dir",
        default=os.environ.get("KFOPS_LABELS_DIR"),
        help="late labels; with --capture-dir, local runs train on labelled captured traffic",
    )
    p.add_argument(
        "--window-hours",
        type=float,
        default=MONITORING_WINDOW_HOURS,
        help="captured traffic to train on (24)",
    )
    p.add_argument(
        "--reference-share",
        type=float,
        default=RETRAIN_REFERENCE_SHARE,
        help="share of the champion's training rows added to the labelled window of a local "
        "retrain (0..1, default %(default)s; 0: the window alone)",
    )
    p.add_argument(
        "--runner",
        choices=("subprocess", "docker"),
        default="subprocess",
        help="where local runs' tasks run (as `kfops run --runner`; default subprocess)",
    )
    p.add_argument("--kfp-host", help="Kubeflow Pipelines host (KFOPS_KFP_HOST)")
    p.add_argument("--kfp-namespace", help="Kubeflow namespace (KFOPS_KFP_NAMESPACE)")
    p.add_argument("--token-file", help="KFP service-account token file (KFOPS_KFP_TOKEN_FILE)")
    p.add_argument("--image", help="project image for Kubeflow runs (KFOPS_IMAGE)")
    p.add_argument(
        "--target",
        help="target column for Kubeflow runs (KFOPS_TRAINING_TARGET; default: the champion's)",
    )
    p.add_argument(
        "--task",
        choices=("classification", "regression"),
        help="task for Kubeflow runs (KFOPS_TRAINING_TASK; default: the champion's)",
    )
    p.set_defaults(func=run)


def build_trigger(args: argparse.Namespace) -> RetrainTrigger:
    from kfops.trigger.state import ModelCatalog, StateStore

    settings = _settings(args)
    data_uri = args.data_uri or _env("KFOPS_RETRAIN_DATA_URI")
    training_target = args.target or _env("KFOPS_TRAINING_TARGET")
    task = args.task or _env("KFOPS_TRAINING_TASK")
    if task not in (None, "classification", "regression"):
        raise ConfigError(
            f"KFOPS_TRAINING_TASK: expected classification or regression, got {task!r}"
        )
    launcher: KubeflowLauncher | LocalLauncher
    if settings.kfp_host:
        from kfops.submit import KfpTarget

        if not data_uri:
            raise ConfigError(
                "--data-uri (or KFOPS_RETRAIN_DATA_URI) is required when runs go to Kubeflow"
            )
        target = KfpTarget.resolve(
            settings.kfp_host, settings.kfp_namespace, token_file=args.token_file
        )
        launcher = KubeflowLauncher(
            target,
            data_uri,
            settings.registry_root,
            training_target=training_target,
            task=task,
            image=settings.image,
            deploy={
                "deploy_target": settings.deploy_target,
                "namespace": settings.deploy_namespace,
            },
        )
    else:
        launcher = LocalLauncher(
            settings.registry_root,
            data_uri=data_uri,
            capture_dir=settings.capture_dir,
            labels_dir=args.labels_dir,
            window_hours=args.window_hours,
            runner=args.runner,
            reference_share=args.reference_share,
        )
    catalog = ModelCatalog.parse(settings.registry_root, settings.trigger_models)
    state_dir = settings.trigger_state_dir or settings.registry_root / "trigger"
    return RetrainTrigger(
        launcher,
        cooldown=_cooldown(args.cooldown),
        models=catalog,
        state=StateStore(state_dir),
        max_keys=args.max_alert_keys,
    )


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        registry_root=args.registry,
        kfp_host=args.kfp_host,
        kfp_namespace=args.kfp_namespace,
        capture_dir=args.capture_dir,
        image=args.image,
        webhook_token_file=getattr(args, "webhook_token_file", None),
        trigger_state_dir=getattr(args, "state_dir", None),
        trigger_models=getattr(args, "models", None),
    )


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _cooldown(flag: float | None) -> float:
    if flag is not None:
        return flag
    raw = os.environ.get("KFOPS_TRIGGER_COOLDOWN", "").strip()
    if not raw:
        return DEFAULT_COOLDOWN
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"KFOPS_TRIGGER_COOLDOWN: expected seconds, got {raw!r}") from None


def run(args: argparse.Namespace) -> int:
    from kfops.trigger.http import WebhookAuth, check_bind, serve

    auth = WebhookAuth(_settings(args).webhook_token_file)
    check_bind(args.host, auth)  # before building anything: a refused address changes nothing
    if args.request_timeout <= 0:
        raise ConfigError(f"--request-timeout {args.request_timeout} must be positive")
    limits = HttpLimits(header_timeout=args.request_timeout, body_timeout=args.request_timeout)
    serve(build_trigger(args), args.host, args.port, auth=auth, limits=limits)
    return 0
