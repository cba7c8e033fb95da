"""`kfops submit`, `kfops schedule`, `kfops upload`: compiled pipelines to Kubeflow Pipelines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kfops import submit as kfp_submit
from kfops.cli import _flags
from kfops.config import Settings

PIPELINES = ("training", "monitoring")


def register(sub: Any) -> None:
    """Add this module's sub-commands to the `kfops` parser."""
    p = sub.add_parser(
        "submit",
        help="compile a pipeline and start a run on Kubeflow Pipelines",
        description="Compile a pipeline with the project image and start one run on Kubeflow "
        "Pipelines (kfp.Client). Prints the run's dashboard URL.",
    )
    _common(p)
    p.add_argument("--run-name", help="run name shown in the UI (default: the pipeline name)")
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="run every step again, even when KFP has a cached result for it",
    )
    p.add_argument("--wait", action="store_true", help="wait for the run and print its state")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits")
    p.add_argument("--poll", type=float, default=5.0, help="seconds between state checks")
    p.add_argument(
        "--upload-version",
        metavar="NAME",
        help="upload the spec as pipeline version NAME first and run that version",
    )
    p.set_defaults(func=_cmd_submit)

    s = sub.add_parser(
        "schedule",
        help="create a recurring run (cron) of the training or monitoring pipeline",
        description="Compile a pipeline and create a recurring run on a cron schedule.",
    )
    _common(s)
    s.add_argument(
        "--cron",
        required=True,
        help="cron schedule, 5 fields ('0 3 * * *' = daily 03:00) or 6 with seconds first",
    )
    s.add_argument("--name", help="recurring run name (default: <pipeline>-schedule)")
    s.add_argument("--max-concurrency", type=int, default=1, help="runs allowed at once")
    s.add_argument("--catchup", action="store_true", help="backfill missed intervals")
    s.add_argument("--upload-version", metavar="NAME", help="schedule uploaded version NAME")
    s.set_defaults(func=_cmd_schedule)

    u = sub.add_parser(
        "upload",
        help="upload a compiled pipeline as a named pipeline version",
        description="Compile a pipeline and upload it as a new version of a named pipeline.",
    )
    _common(u, params=False)
    u.add_argument(
        "--pipeline-version",
        dest="version_name",
        metavar="NAME",
        help="pipeline version name to create (required), e.g. a git tag",
    )
    _flags.deprecated(u, "--version", "--pipeline-version", "version_name")
    u.add_argument("--description", help="version description")
    u.set_defaults(func=_cmd_upload)


def _common(p: argparse.ArgumentParser, params: bool = True) -> None:
    p.add_argument(
        "pipeline",
        nargs="?",
        default="training",
        choices=PIPELINES,
        help="which pipeline (default training)",
    )
    p.add_argument("--host", help="KFP endpoint (env KFOPS_KFP_HOST or KF_PIPELINES_ENDPOINT)")
    p.add_argument("--namespace", help="profile namespace, multi-user KFP (KFOPS_KFP_NAMESPACE)")
    p.add_argument(
        "--token-file",
        type=Path,
        help="service-account token file (KFOPS_KFP_TOKEN_FILE; a bearer token: KFOPS_KFP_TOKEN)",
    )
    p.add_argument("--image", help="image baked into the spec (KFOPS_IMAGE, default kfops:<ver>)")
    p.add_argument(
        "--package",
        type=Path,
        help="use this compiled spec instead of compiling (e.g. from `make compile`)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="where the compiled spec goes (default build/pipelines/<pipeline>.yaml)",
    )
    p.add_argument("--pipeline-name", help="pipeline name for uploads (default kfops-<pipeline>)")
    if params:
        p.add_argument("--experiment", default="kfops", help="experiment name (default kfops)")
        p.add_argument(
            "--param",
            action="append",
            metavar="NAME=VALUE",
            help="pipeline parameter; VALUE is parsed as JSON when it can be (repeatable)",
        )
        p.add_argument("--service-account", help="Kubernetes service account for the run")


def _target(args: argparse.Namespace) -> kfp_submit.KfpTarget:
    return kfp_submit.KfpTarget.resolve(
        host=args.host, namespace=args.namespace, token_file=args.token_file
    )


def _package(args: argparse.Namespace) -> Path:
    if args.package is not None:
        kfp_submit.load_package(args.package)
        return Path(args.package)
    image = Settings.from_env(image=args.image).image
    out = args.out or Path("build/pipelines") / f"{args.pipeline}.yaml"
    path = kfp_submit.compile_package(args.pipeline, out, image)
    print(f"compiled {args.pipeline} pipeline with image {image}: {path}")
    return path


def _upload(
    args: argparse.Namespace, target: kfp_submit.KfpTarget, package: Path, version_name: str
) -> kfp_submit.VersionRef:
    ref = kfp_submit.upload_version(
        target,
        package,
        pipeline_name=args.pipeline_name or f"kfops-{args.pipeline}",
        version_name=version_name,
        description=getattr(args, "description", None),
    )
    print(f"uploaded version {version_name}: {ref.url}")
    return ref


def _cmd_submit(args: argparse.Namespace) -> int:
    target = _target(args)
    package = _package(args)
    arguments = kfp_submit.parse_params(args.param)
    if args.no_cache:
        arguments = kfp_submit.without_cache(kfp_submit.load_package(package), arguments)
    if args.upload_version:
        # Check the host, then the arguments, before a version is uploaded.
        kfp_submit.check_endpoint(target)
        kfp_submit.check_arguments(kfp_submit.load_package(package), arguments)
        ref = _upload(args, target, package, args.upload_version)
        result = kfp_submit.submit_run(
            target,
            version=ref,
            arguments=arguments,
            experiment=args.experiment,
            run_name=args.run_name or f"kfops-{args.pipeline}",
            service_account=args.service_account,
            wait=args.wait,
            timeout=args.timeout,
            poll_seconds=args.poll,
        )
    else:
        result = kfp_submit.submit_run(
            target,
            package,
            arguments=arguments,
            experiment=args.experiment,
            run_name=args.run_name,
            service_account=args.service_account,
            enable_caching=False if args.no_cache else None,
            wait=args.wait,
            timeout=args.timeout,
            poll_seconds=args.poll,
        )
    print(f"run {result.run_id} submitted to {target.host} (experiment {args.experiment})")
    print(f"run details: {result.url}")
    if args.wait:
        print(f"run {result.run_id} finished: {result.state}")
        return 0 if result.state.upper() == "SUCCEEDED" else 1
    return 0


def _cmd_schedule(args: argparse.Namespace) -> int:
    target = _target(args)
    kfp_submit.normalize_cron(args.cron)  # fail on a bad cron before compiling
    package = _package(args)
    arguments = kfp_submit.parse_params(args.param)
    common: dict[str, Any] = {
        "cron": args.cron,
        "arguments": arguments,
        "experiment": args.experiment,
        "name": args.name,
        "max_concurrency": args.max_concurrency,
        "catchup": args.catchup,
        "service_account": args.service_account,
    }
    if args.upload_version:
        kfp_submit.check_endpoint(target)
        kfp_submit.check_arguments(kfp_submit.load_package(package), arguments)
        ref = _upload(args, target, package, args.upload_version)
        common["name"] = args.name or f"kfops-{args.pipeline}-schedule"
        result = kfp_submit.schedule_run(target, version=ref, **common)
    else:
        result = kfp_submit.schedule_run(target, package, **common)
    print(f"recurring run {result.recurring_run_id} created on {target.host} (cron {result.cron})")
    print(f"recurring run details: {result.url}")
    return 0


def _cmd_upload(args: argparse.Namespace) -> int:
    if not args.version_name:
        from kfops.errors import ConfigError

        raise ConfigError("upload needs --pipeline-version NAME (the version to create)")
    target = _target(args)
    package = _package(args)
    _upload(args, target, package, args.version_name)
    return 0
