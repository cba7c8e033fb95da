"""Errors a user can cause. Each carries one message naming what is wrong.

The CLI prints ``error: <message>`` and exits with code 2; the model server maps them to 4xx.
"""


class KfopsError(Exception):
    """Base class for every error caused by input, configuration or environment."""


class DataError(KfopsError):
    """The input data cannot be read or is unusable (empty, binary, missing target, ...)."""


class ContractError(KfopsError):
    """Data violates a data contract; ``report`` holds the full list of violations."""

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report


class ConfigError(KfopsError):
    """A bad setting: unknown estimator or parameter, bad threshold, bad search space, ..."""


class RegistryError(KfopsError):
    """Unknown model, version or alias, or a version whose files fail verification."""


class ClusterError(KfopsError):
    """A cluster or Kubeflow endpoint is unreachable, refuses us, or rejects an object."""
