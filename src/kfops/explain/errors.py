"""Errors of the explanation modules (subclasses of the kfops errors the server maps to 4xx)."""

from __future__ import annotations

from kfops.errors import KfopsError


class ExplainUnsupported(KfopsError):
    """The model cannot be explained exactly: no fast exact explainer fits its estimator, or its
    preprocessing cannot be traced back to the columns the user sends. The server answers this
    with a 4xx; nothing about the request can fix it."""


class ExplanationMismatch(RuntimeError):
    """Base value plus contributions did not reproduce the model's output: a bug, never a
    user error, so it is not a KfopsError (the server answers 500 rather than a wrong 200)."""
