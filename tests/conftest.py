import numpy as np
import pytest

from mpireg.convert.ratings import synth_ratings
from mpireg.convert.synth import synthesize


@pytest.fixture(scope="session")
def datasets(tmp_path_factory):
    """Small float64 data sets for each model, 3 shards each (rows not divisible by 2, 4, 8)."""
    root = tmp_path_factory.mktemp("data")
    out = {}
    for task, classes in (("linear", 0), ("logistic", 2), ("softmax", 4)):
        path = root / task
        synthesize(task, rows=1203, features=6, out=path, shards=3, classes=classes or 3,
                   test_rows=301, noise=0.3, seed=7, dtype="float64")
        out[task] = path
    synth_ratings(60, 30, 3, 1203, root / "ratings", shards=3, test_rows=301, noise=0.3, seed=7,
                  dtype="float64")
    out["ratings"] = root / "ratings"
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
