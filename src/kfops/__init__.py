"""kfops: continuous training and continuous monitoring for tabular scikit-learn models."""

__version__ = "0.1.0"
