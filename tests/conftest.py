import subprocess
import sys
from pathlib import Path

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


# ------------------------------------------------------------------ nothing written into the checkout
# Tests write into their tmp_path; a test that leaves runs/, data/ or a stray file in the
# checkout fails the session, naming what it left (build outputs and caches aside).
_CHECKOUT = Path(__file__).resolve().parent.parent
_LEFT_ALONE = ("__pycache__", ".pytest_cache", ".egg-info", "build/", ".so", ".pyc", ".ruff_cache")


def _untracked() -> set | None:
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--ignored", "--untracked-files=all"], cwd=_CHECKOUT,
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None  # not a git checkout (an unpacked sdist): nothing to compare
    return {line[3:] for line in out.stdout.splitlines()
            if line[:2] in ("??", "!!") and not any(mark in line for mark in _LEFT_ALONE)}


def pytest_sessionstart(session):
    session.config._untracked_before = _untracked()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_untracked_before", None)
    after = _untracked() if before is not None else None
    if after is None:
        return
    new = sorted(after - before)
    if new:
        sys.stderr.write(f"\nthe tests wrote into the checkout ({_CHECKOUT}): {', '.join(new[:20])}"
                         f"{' ...' if len(new) > 20 else ''}\n(write into tmp_path instead)\n")
        session.exitstatus = 1
