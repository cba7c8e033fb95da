"""The retraining trigger: Alertmanager webhooks in, training runs out.

``kfops trigger`` serves ``POST /alerts`` (the Alertmanager webhook format, version 4). For each
model named by a firing alert's ``model`` label it decides, and logs why:

- ``duplicate``: every alert of the notification (fingerprint + start time) was already acted
  on; Alertmanager re-sends firing alerts every ``repeat_interval``.
- ``in_flight``: a run for the model is still going (at most one per model).
- ``cooldown``: the last run for the model started less than ``cooldown`` seconds ago.
- otherwise it starts a run through its ``Launcher``: the training pipeline on Kubeflow when a
  KFP host is configured, else locally (``kfops.local_runner.run_training``) on fresh data.

An alert storm therefore makes one run, not hundreds. When a run cannot be submitted (e.g. the
Kubeflow host is unreachable) the trigger logs a clear error and answers 503, so Alertmanager
retries the notification: nothing is lost, the alert stays firing. Malformed JSON is a 400.

Only models that exist are acted on (``state.ModelCatalog``: the registry's models, or an
allowlist on Kubeflow); alerts naming any other model are ignored and counted
(``unknown_model``). The de-duplication ledger is bounded and expires in order, and it and the
cooldowns survive a restart (``state.StateStore``, next to the registry). The HTTP side (bearer
token, loopback-only without one, bounded threads, timeouts, body limit) is ``http``.

``GET /metrics`` exports kfops_trigger_webhooks_total, kfops_trigger_runs_total{outcome},
kfops_trigger_skipped_total{reason}, kfops_trigger_runs_in_flight, kfops_trigger_dedup_keys,
kfops_trigger_dedup_evictions_total and kfops_trigger_state_write_failures_total;
``GET /status`` returns the per-model state as JSON; ``GET /healthz`` answers ok.
"""

from kfops.trigger.decisions import (
    COOLDOWN,
    DEFAULT_COOLDOWN,
    DEFAULT_DEDUP_TTL,
    DUPLICATE,
    FAILED,
    IN_FLIGHT,
    NO_MODEL,
    RESOLVED,
    STARTED,
    SUBMIT_FAILED,
    SUCCEEDED,
    UNKNOWN_MODEL,
    BadRequest,
    Decision,
    ModelState,
    RetrainTrigger,
    parse_notification,
)
from kfops.trigger.http import make_server, serve
from kfops.trigger.launchers import (
    KubeflowLauncher,
    Launcher,
    LocalLauncher,
    RetrainRequest,
    RunOutcome,
    new_run_id,
)

__all__ = [
    "COOLDOWN",
    "DEFAULT_COOLDOWN",
    "DEFAULT_DEDUP_TTL",
    "DUPLICATE",
    "FAILED",
    "IN_FLIGHT",
    "NO_MODEL",
    "RESOLVED",
    "STARTED",
    "SUBMIT_FAILED",
    "SUCCEEDED",
    "UNKNOWN_MODEL",
    "BadRequest",
    "Decision",
    "KubeflowLauncher",
    "Launcher",
    "LocalLauncher",
    "ModelState",
    "RetrainRequest",
    "RetrainTrigger",
    "RunOutcome",
    "make_server",
    "new_run_id",
    "parse_notification",
    "serve",
]
