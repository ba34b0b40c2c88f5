import numpy as np
import pytest

from mpireg.config import OptimizerConfig
from mpireg.optim import SGD, Adam, learning_rate, solve_normal


def test_sgd_momentum_matches_the_textbook_recursion():
    cfg = OptimizerConfig(kind="sgd", momentum=0.9)
    opt = SGD(cfg)
    w = np.array([1.0, -2.0])
    ref_w, ref_v = w.copy(), np.zeros(2)
    for g in ([0.5, 0.1], [0.2, -0.3], [-0.1, 0.4]):
        g = np.array(g)
        opt.step(w, g.copy(), lr=0.1)
        ref_v = 0.9 * ref_v + g
        ref_w = ref_w - 0.1 * ref_v
    np.testing.assert_allclose(w, ref_w, rtol=1e-15)


def test_adam_matches_the_paper():
    cfg = OptimizerConfig(kind="adam")
    opt = Adam(cfg)
    w = np.array([1.0, -2.0, 0.5])
    ref, m, v = w.copy(), np.zeros(3), np.zeros(3)
    for t, g in enumerate(([0.5, 0.1, 0.0], [0.2, -0.3, 1.0], [-0.1, 0.4, 2.0]), 1):
        g = np.array(g)
        opt.step(w, g.copy(), lr=0.01)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref -= 0.01 * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
    np.testing.assert_allclose(w, ref, rtol=1e-12)


def test_l1_proximal_step_soft_thresholds_penalised_entries_only():
    opt = SGD(OptimizerConfig(kind="sgd"), l1=1.0, l1_mask=np.array([1.0, 1.0, 1.0, 0.0]))
    w = np.array([0.05, -0.5, 0.2, 0.01])
    opt.step(w, np.zeros(4), lr=0.1)  # threshold lr * l1 = 0.1
    np.testing.assert_allclose(w, [0.0, -0.4, 0.1, 0.01])


def test_state_dict_round_trip_continues_identically():
    cfg = OptimizerConfig(kind="adam")
    a, b = Adam(cfg), Adam(cfg)
    wa = np.ones(3)
    a.step(wa, np.array([0.1, 0.2, 0.3]), 0.1)
    b.load_state_dict({k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in a.state_dict().items()})
    wb = wa.copy()
    a.step(wa, np.array([0.3, 0.2, 0.1]), 0.1)
    b.step(wb, np.array([0.3, 0.2, 0.1]), 0.1)
    assert np.array_equal(wa, wb)


@pytest.mark.parametrize("schedule,step,epoch,expected", [
    ("constant", 50, 3, 0.1),
    ("step", 0, 25, 0.1 * 0.1 ** 2),
    ("cosine", 50, 0, 0.05),
    ("invscaling", 3, 0, 0.1 / 2.0),
])
def test_schedules(schedule, step, epoch, expected):
    cfg = OptimizerConfig(lr=0.1, schedule=schedule, decay_epochs=10, power_t=0.5)
    assert learning_rate(cfg, step, epoch, total_steps=100) == pytest.approx(expected)


def test_warmup_ramps_linearly():
    cfg = OptimizerConfig(lr=1.0, warmup_steps=4)
    assert [learning_rate(cfg, s, 0, 100) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]


def test_normal_solver_is_ridge_closed_form(rng):
    X = rng.standard_normal((50, 3))
    y = rng.standard_normal(50)
    A, b = X.T @ X, X.T @ y
    w = solve_normal(A, b, 50, l2=0.2, mask=np.ones(3))
    np.testing.assert_allclose(w, np.linalg.solve(X.T @ X / 50 + 0.2 * np.eye(3), X.T @ y / 50))
