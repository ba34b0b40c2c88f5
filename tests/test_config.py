import pytest

from mpireg.config import config_from_dict, dumps_toml, load_job
from mpireg.errors import ConfigError

BASE = ["data.train=data/x"]


def test_defaults_and_overrides(tmp_path):
    job = tmp_path / "j.toml"
    job.write_text('[data]\ntrain = "a"\n[optimizer]\nlr = 0.5\n')
    cfg = load_job(job, ["optimizer.lr=0.05", "comm.strategy=allreduce", 'data.test=["t1", "t2"]'])
    assert cfg.optimizer.lr == 0.05 and cfg.data.train == ["a"] and cfg.data.test == ["t1", "t2"]
    assert cfg.name == "j" and cfg.optimizer.kind == "sgd"


def test_resolved_config_round_trips_through_toml():
    import tomllib

    cfg = load_job(None, BASE + ["model.l2=1e-3", "data.synth.rows=10"])
    assert config_from_dict(tomllib.loads(dumps_toml(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("override,message", [
    ("optimizer.lrr=1", "optimizer.lrr: unknown key; did you mean optimizer.lr?"),
    ("bogus=1", "bogus: unknown key"),
    ("optimizer.lr=-1", "optimizer.lr: expected a value > 0.0, got -1.0"),
    ("optimizer.lr=fast", "optimizer.lr: expected a number, got str 'fast'"),
    ("optimizer.epochs=2.5", "optimizer.epochs: expected an integer, got float 2.5"),
    ("optimizer.momentum=1.0", "optimizer.momentum: expected a value < 1.0"),
    ("model.kind=tree", "model.kind: expected one of 'linear', 'logistic', 'softmax', 'mlp', 'mf', 'glm', got 'tree'"),
    ("model.fit_intercept=1", "model.fit_intercept: expected true or false, got int 1"),
    ("comm.strategy=carrier-pigeon", "comm.strategy: expected one of"),
    ("data.train=3", "data.train: expected a path or a list of paths"),
    ("optimizer=3", "optimizer: expected a table"),
    ("optimizer.lr=nan", "optimizer.lr: expected a finite number, got nan"),
    ("model.l2=inf", "model.l2: expected a finite number, got inf"),
    ("run.watchdog_seconds=-inf", "run.watchdog_seconds: expected a finite number"),
    ("optimizer.batch_size=99999999999999999999", "optimizer.batch_size: expected an integer below 2^63"),
    ("optimizer.epochs=-9223372036854775808", "optimizer.epochs: expected an integer below 2^63"),
    ("model.hidden=[0]", "model.hidden: expected a list of positive integers"),
    ('data.train=[]', "data.train"),
    ("comm.servers=-1", "comm.servers: expected a value >= 0"),
])
def test_bad_values_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_job(None, BASE + [override])
    assert message in str(info.value)


def test_rules_across_keys():
    with pytest.raises(ConfigError, match="'normal' solves linear"):
        load_job(None, BASE + ["model.kind=logistic", "optimizer.kind=normal"])
    with pytest.raises(ConfigError, match="model.l1: an L1 penalty needs a proximal step"):
        load_job(None, BASE + ["model.l1=0.1", "optimizer.kind=lbfgs"])
    with pytest.raises(ConfigError, match="data.train: no training data"):
        load_job(None, [])


def test_bad_toml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="job file not found"):
        load_job(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data\ntrain = 1")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_job(bad)
    with pytest.raises(ConfigError, match="expected key=value"):
        load_job(None, BASE + ["novalue"])


def test_lbfgs_memory_defaults_to_10_pairs_and_40_on_a_first_order_path():
    opt = config_from_dict({"data": {"train": ["<arrays>"]}, "optimizer": {"kind": "lbfgs"}}).optimizer
    assert opt.history == 0 and opt.memory() == 10 and opt.memory(path=True) == 40
    mine = config_from_dict({"data": {"train": ["<arrays>"]}, "optimizer": {"kind": "lbfgs", "history": 7}}).optimizer
    assert mine.memory() == 7 and mine.memory(path=True) == 7  # a user's number is kept
