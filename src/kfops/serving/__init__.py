"""Serving: the KServe predictor, request validation, metrics and payload capture."""
