"""The alpha-beta autotuner: its fit, its bucket rule, and `comm.strategy = "auto"` in a real job."""
import json

import numpy as np
import pytest

from mpireg.comm.autotune import Fit, best_buckets, fit, probe_sizes
from tests.helpers import sgd_job, train_job


def test_the_fit_recovers_alpha_and_beta_from_exact_times():
    sizes = [8, 4096, 65536, 1 << 20, 4 << 20]
    alpha, beta = 12e-6, 1 / 5e9
    got = fit("x", sizes, [alpha + n * beta for n in sizes])
    assert got.alpha == pytest.approx(alpha, rel=1e-6) and got.beta == pytest.approx(beta, rel=1e-6)


def test_relative_error_keeps_the_latency_of_small_messages():
    """A plain least-squares fit lets the big sizes' noise swamp alpha; relative error does not."""
    sizes = [8, 4096, 1 << 20, 16 << 20, 64 << 20]
    alpha, beta = 5e-6, 1 / 4e9
    noisy = [(alpha + n * beta) * (1.05 if n > 1 << 20 else 1.0) for n in sizes]
    assert fit("x", sizes, noisy).alpha == pytest.approx(alpha, rel=0.2)


def test_the_probe_covers_the_step_buffer_size():
    for nbytes in (420, 800_816, 8_004_016, 1 << 30):
        sizes = probe_sizes(nbytes)
        assert sizes == sorted(sizes) and sizes[0] == 8 and max(sizes) <= 64 << 20
        assert min(nbytes, 64 << 20) - 8 < max(s for s in sizes if s <= max(nbytes, 8)) + 8


def test_one_bucket_unless_overlap_is_measured_to_pay():
    f = Fit("allreduce", alpha=20e-6, beta=1 / 2e9)
    assert best_buckets(f, 8 << 20, overlaps=False) == 1
    assert best_buckets(f, 8 << 20, overlaps=True) == 1                      # no measured gain
    assert best_buckets(f, 8 << 20, overlaps=True, overlap_gain=0.8) > 1
    assert best_buckets(Fit("ring", 20e-6, 1 / 2e9), 8 << 20, True, 0.8) == 1  # only Iallreduce overlaps
    assert f.predict(8 << 20) == pytest.approx(20e-6 + (8 << 20) / 2e9)


def test_auto_trains_what_allreduce_trains_and_logs_its_pick(datasets, tmp_path):
    reference, _, _ = train_job(3, tmp_path / "allreduce", sgd_job(datasets, "softmax"))
    params, summary, result = train_job(3, tmp_path / "auto", sgd_job(datasets, "softmax", "comm.strategy=auto"))
    assert summary["strategy"] in ("allreduce", "ring", "hierarchical")
    assert "comm.strategy = auto:" in result.stdout + result.stderr and "predicted" in result.stdout + result.stderr
    np.testing.assert_allclose(params, reference, rtol=1e-7, atol=1e-10)
    steps = [json.loads(line) for line in (tmp_path / "auto" / "metrics.jsonl").read_text().splitlines()]
    assert any(r["type"] == "step" and "exposed_comm_ms" in r for r in steps)
