"""Thin KFP components, one module per lifecycle step. Logic lives in kfops."""
