"""The Python API: estimators in scikit-learn's shape on the CLI's engine (see docs/api.md)."""
from .linear_models import LinearRegression, LogisticRegression, SoftmaxRegression
from .files import load
from .factorization import MatrixFactorization
from .glm import GammaRegressor, GeneralizedLinearRegressor, PoissonRegressor, TweedieRegressor
from .neural import MLPClassifier, MLPRegressor
from .path_cv import ElasticNetCV, GeneralizedLinearRegressorCV, LogisticRegressionCV

__all__ = ["ElasticNetCV", "GammaRegressor", "GeneralizedLinearRegressor", "GeneralizedLinearRegressorCV",
           "LogisticRegressionCV", "PoissonRegressor", "TweedieRegressor", "LinearRegression", "LogisticRegression", "MatrixFactorization", "MLPClassifier", "MLPRegressor", "SoftmaxRegression",
           "load"]
