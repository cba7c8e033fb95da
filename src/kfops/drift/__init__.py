"""Drift statistics: reference profiles, window profiles, PSI/KS/JS, streaming."""
