"""KFP pipeline definitions composed from kfops.components."""
