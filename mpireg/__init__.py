"""mpireg: data-parallel training of regression-family models over MPI, from HDF5 shards.

    from mpireg import LogisticRegression      # the Python API (mpireg.api; imports scikit-learn)
    python -m mpireg.train JOB.toml            # the CLI (never imports the API)
"""

__version__ = "0.1.0"

_API = ("LinearRegression", "LogisticRegression", "SoftmaxRegression", "MLPClassifier", "MLPRegressor",
        "MatrixFactorization", "GeneralizedLinearRegressor", "PoissonRegressor", "GammaRegressor",
        "TweedieRegressor", "GeneralizedLinearRegressorCV", "ElasticNetCV", "LogisticRegressionCV", "load")


def __getattr__(name):
    # Lazily: `python -m mpireg.train` pays for neither scikit-learn nor the API.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'mpireg' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
