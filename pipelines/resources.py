"""CPU and memory for every pipeline task, in one place.

Requests are what the scheduler reserves: small enough that a one-node kind cluster already
running KFP, KServe and kube-prometheus-stack can schedule a run (docs/cluster.md); limits
leave room for larger data. kfp.local ignores both.
"""

from typing import Any

# size -> (cpu request, memory request, cpu limit, memory limit)
SIZES = {
    # bookkeeping: cache keys, deploy, tuning asks (imports, a few files)
    "small": ("100m", "256Mi", "1", "1Gi"),
    # reads the whole table: extract, validate, prepare, evaluate, bless, monitor, register
    # (which verifies the ONNX twin on the whole held-out split)
    "data": ("250m", "512Mi", "2", "4Gi"),
    # fits models: train, tuning trials
    "train": ("500m", "512Mi", "2", "4Gi"),
}


def sized(task: Any, size: str) -> Any:
    """Set ``task``'s requests and limits to ``SIZES[size]``; returns the task."""
    cpu, memory, cpu_limit, memory_limit = SIZES[size]
    return (
        task.set_cpu_request(cpu)
        .set_memory_request(memory)
        .set_cpu_limit(cpu_limit)
        .set_memory_limit(memory_limit)
    )
