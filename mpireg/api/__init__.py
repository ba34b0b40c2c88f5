"""The Python API: estimators in scikit-learn's shape on the CLI's engine (see docs/api.md)."""
from .estimators import LinearRegression, LogisticRegression, SoftmaxRegression
from .files import load
from .mf import MatrixFactorization
from .mlp import MLPClassifier, MLPRegressor

__all__ = ["LinearRegression", "LogisticRegression", "MatrixFactorization", "MLPClassifier", "MLPRegressor", "SoftmaxRegression",
           "load"]
