"""The Python API: estimators in scikit-learn's shape on the CLI's engine (see docs/api.md)."""
from .linear_models import LinearRegression, LogisticRegression, SoftmaxRegression
from .files import load
from .factorization import MatrixFactorization
from .neural import MLPClassifier, MLPRegressor

__all__ = ["LinearRegression", "LogisticRegression", "MatrixFactorization", "MLPClassifier", "MLPRegressor", "SoftmaxRegression",
           "load"]
