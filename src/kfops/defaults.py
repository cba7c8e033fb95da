"""Defaults that several entry points share, each in one place.

- ``IMAGE``: the project image, tagged with the installed kfops version (components, the
  compiler, ``Settings.image``, the local runner and the trigger all start from it).
- ``MONITORING_WINDOW_HOURS``: how much captured traffic one monitoring window (and a local
  retraining run on captured traffic) looks at; ``PUSHGATEWAY_JOB``: the job label monitoring
  figures are pushed under (what the stale-job alert selects).
- ``DEPLOY_NAMESPACE``: where a blessed model's InferenceService goes unless told otherwise.
  ``kfops`` is the namespace the manifests create (``manifests/base``), where their RBAC lets
  the pipeline manage InferenceServices and where the production overlay runs everything;
  an install that runs kfops elsewhere (kind: KFP standalone's ``kubeflow``) says so with
  ``KFOPS_DEPLOY_NAMESPACE`` or the pipeline parameter ``namespace``.

- ``KEEP_RUNS``: how many local runs keep their pipeline root and executor log under the
  registry root (kfops.run_roots; ``KFOPS_KEEP_RUNS``, ``kfops run --keep-runs``).

Training-run defaults (task, estimator, seed, test size, maximum regression, tuning budget) are
the field defaults of ``kfops.params.TrainingParams``; alias names are
``kfops.registry.CHAMPION`` and ``CHALLENGER``.
"""

from kfops import __version__

IMAGE = f"kfops:{__version__}"
DEPLOY_NAMESPACE = "kfops"
MONITORING_WINDOW_HOURS = 24.0
PUSHGATEWAY_JOB = "kfops-monitoring"

# A retrain after monitoring (kfops monitor, the trigger's local launcher, the monitoring
# pipeline) trains on the labelled window plus this share of the champion's training rows.
RETRAIN_REFERENCE_SHARE = 1.0
KEEP_RUNS = 10
