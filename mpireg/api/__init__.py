"""The Python API: estimators in scikit-learn's shape on the CLI's engine (see docs/api.md)."""
from .estimators import LinearRegression, LogisticRegression, SoftmaxRegression, load

__all__ = ["LinearRegression", "LogisticRegression", "SoftmaxRegression", "load"]
