"""The plan: one capability table read by config validation and by the plan, the data each
rank holds under each topology, and the plan written where a user reads it."""
import json

import pytest
from mpi4py import MPI

from mpireg import fit
from mpireg.capabilities import OPTIMIZERS, STRATEGIES
from mpireg.config import CommConfig, load_job
from mpireg.errors import ConfigError
from mpireg.fit.plan import data_partition, make_plan, procedure_of
from tests.inprocess import train


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize("strategy", [*STRATEGIES, "auto"])
@pytest.mark.parametrize("deterministic", [False, True])
def test_what_config_accepts_the_plan_can_run(optimizer, strategy, deterministic):
    """Every combination a job file may name has a procedure; what the table rules out, the job
    file refuses with a message naming the key."""
    model = {"normal": "linear", "als": "mf", "adagrad": "logistic", "irls": "glm"}.get(optimizer, "logistic")
    overrides = ["data.train=x", f"model.kind={model}", f"optimizer.kind={optimizer}",
                 f"comm.strategy={strategy}", f"comm.deterministic={str(deterministic).lower()}"]
    traits, opt = STRATEGIES.get(strategy), OPTIMIZERS[optimizer]
    refused = (traits is not None and ("cpu" not in traits.device
                                       or (deterministic and not traits.deterministic)
                                       or (traits.models and model not in traits.models)
                                       or (traits.topology in ("key-shards", "async-key-shards")
                                           and optimizer != "sgd")
                                       or (not traits.full_batch and optimizer in ("lbfgs", "normal"))))
    refused |= deterministic and not opt.deterministic
    refused |= opt.strategies is not None and strategy not in opt.strategies
    if refused:
        with pytest.raises(ConfigError, match=r"comm\.|optimizer\.|model\."):
            load_job(None, overrides)
        return
    cfg = load_job(None, overrides)
    assert procedure_of(cfg) in fit.PROCEDURES


def test_ranks_that_serve_hold_no_rows():
    settings = CommConfig(servers=2)
    assert [data_partition("ps-async", settings, r, 4) for r in range(4)] == [None, (0, 3), (1, 3), (2, 3)]
    assert [data_partition("sharded-async", settings, r, 4) for r in range(4)] == [None, None, (0, 2), (1, 2)]
    assert [data_partition(s, settings, 1, 4) for s in ("allreduce", "ps", "sharded", "auto")] == [(1, 4)] * 4
    with pytest.raises(ConfigError, match="'ps-async' needs at least 2 ranks"):
        data_partition("ps-async", settings, 0, 1)


def test_the_plan_is_in_the_summary_with_its_reasons(datasets, tmp_path):
    summary, _ = train(tmp_path / "run", [f"data.train={datasets['logistic']}", "model.kind=logistic",
                                          "optimizer.kind=sgd", "optimizer.epochs=1"])
    plan = summary["plan"]
    assert (plan["procedure"], plan["strategy"], plan["reducer"], plan["topology"]) == \
        ("minibatch", "allreduce", "allreduce", "collective")
    assert any("optimizer.kind = 'sgd'" in line for line in plan["why"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["plan"] == plan


def test_auto_decides_the_sparse_exchange_before_any_probe(monkeypatch):
    """On CSR data "auto" measures the first batch's keys and takes the sparse exchange, or the
    probe runs; never both, and the probe's winner is never discarded afterwards."""
    import numpy as np
    import scipy.sparse as sp

    from mpireg.fit import plan as plan_module
    from mpireg.models import make_model

    probed = []
    monkeypatch.setattr(plan_module, "autotune", lambda *a, **k: probed.append(1))
    monkeypatch.setattr(plan_module, "measure_links", lambda comm: None)  # (a fake communicator)

    class Rows:  # one block of very sparse rows over 2^20 columns
        block_sizes = [64]

        def block(self, i):
            X = sp.random(64, 2**20, density=2e-5, format="csr", random_state=0)
            return X, np.zeros(64)

    class Schema:
        sparse = True

    class TwoRanks:  # what the plan asks of the communicator, as on 2 ranks
        size, rank = 2, 0

        def allreduce(self, value, op=None):
            return value

        def Allreduce(self, *args, **kwargs):
            pass

    cfg = load_job(None, ["data.train=x", "model.kind=logistic", "optimizer.kind=sgd", "comm.strategy=auto"])
    model = make_model("logistic", 2**20)
    plan = make_plan(cfg, TwoRanks(), Schema(), model, Rows(), np.dtype(np.float32))
    assert plan.strategy == "sharded" and plan.procedure == "sharded" and not probed
    assert any("sharded exchange" in line for line in plan.why)


def test_one_rank_plans_without_probing():
    cfg = load_job(None, ["data.train=x", "comm.strategy=auto"])

    class Schema:
        sparse = False

    from mpireg.models import make_model
    import numpy as np

    plan = make_plan(cfg, MPI.COMM_SELF, Schema(), make_model("linear", 3), None, np.dtype(np.float64))
    assert plan.strategy == "allreduce" and "one rank" in plan.why[0]
