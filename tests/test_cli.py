"""The commands a user types, end to end: quickstart, the run directory, predict, resume."""
import json
import shutil

import h5py
import numpy as np
import pytest

from mpireg.checkpoint import list_checkpoints
from mpireg.data import ShardReader, read_schema, resolve_paths
from mpireg.model_io import load_model
from tests.helpers import ROOT, run_command, run_ranks
from tests.inprocess import train


def test_quickstart_from_a_fresh_directory(tmp_path):
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs")
    result = run_ranks(2, "jobs/quickstart.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "quickstart"
    for name in ("model.h5", "metrics.jsonl", "config.toml", "summary.json"):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ranks"] == 2 and summary["strategy"] == "allreduce"
    assert set(summary["train"]) >= {"loss", "log_loss", "accuracy", "auc"}
    assert summary["eval"]["accuracy"] > 0.75 and summary["eval"]["auc"] > 0.8
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [1, 2, 3, 4, 5]
    assert "epoch 5/5" in result.stdout and result.stdout.count("done:") == 1  # rank 0 only


@pytest.mark.parametrize("suffix", [".h5", ".npy", ".csv"])
@pytest.mark.parametrize("task", ["linear", "softmax"])
def test_predict_writes_every_row_in_order(datasets, tmp_path, task, suffix):
    train(tmp_path / "run", [f"data.train={datasets[task]}", f"model.kind={task}", "optimizer.kind=lbfgs"])
    out = tmp_path / f"pred{suffix}"
    args = [str(tmp_path / "run" / "model.h5"), str(datasets[task] / "test"), "--out", str(out)]
    result = run_command(["python", "-m", "mpireg.predict", *args])
    assert result.returncode == 0, result.stderr
    pred = {".h5": lambda: h5py.File(out)["pred"][()], ".npy": lambda: np.load(out),
            ".csv": lambda: np.loadtxt(out, delimiter=",")}[suffix]()
    model, params, _ = load_model(tmp_path / "run" / "model.h5")
    X, _ = ShardReader(read_schema(resolve_paths([datasets[task] / "test"])), 0, 1, 1e9).block(0)
    np.testing.assert_allclose(pred, model.predict(params, X), rtol=1e-7)
    if task == "softmax" and suffix == ".npy":
        out_p = tmp_path / "proba.npy"
        assert run_command(["python", "-m", "mpireg.predict", *args[:2], "--out", str(out_p),
                            "--proba"]).returncode == 0
        np.testing.assert_allclose(np.load(out_p).sum(axis=1), 1.0)


def test_predict_rejects_data_with_other_features(datasets, tmp_path):
    from mpireg.data import write_shard

    train(tmp_path / "run", [f"data.train={datasets['linear']}", "model.kind=linear", "optimizer.kind=normal"])
    write_shard(tmp_path / "other.h5", np.zeros((5, 4)), np.zeros(5), "regression")
    result = run_command(["python", "-m", "mpireg.predict", str(tmp_path / "run" / "model.h5"),
                          str(tmp_path / "other.h5"), "--out", str(tmp_path / "p.h5")])
    assert result.returncode == 1
    assert "other.h5: 4 features, but the model" in result.stderr and "trained on 6" in result.stderr


def test_resume_reaches_the_uninterrupted_model_bit_for_bit(datasets, tmp_path):
    common = [f"data.train={datasets['logistic']}", "model.kind=logistic", "optimizer.kind=adam",
              "optimizer.lr=0.05", "optimizer.batch_size=32", "optimizer.tol=0", "model.l2=1e-3"]
    _, straight = train(tmp_path / "straight", common + ["optimizer.epochs=4"])
    train(tmp_path / "split", common + ["optimizer.epochs=2"])
    assert len(list_checkpoints(tmp_path / "split" / "checkpoints")) == 2
    summary, resumed = train(tmp_path / "split", common + ["optimizer.epochs=4"], resume=True)
    assert np.array_equal(resumed, straight)
    assert summary["epochs"] == 4


def test_resume_skips_a_corrupt_newest_checkpoint(datasets, tmp_path, capsys):
    common = [f"data.train={datasets['linear']}", "model.kind=linear", "optimizer.batch_size=64",
              "optimizer.lr=0.05", "optimizer.tol=0"]
    train(tmp_path / "run", common + ["optimizer.epochs=3"])
    newest = list_checkpoints(tmp_path / "run" / "checkpoints")[-1]
    with h5py.File(newest, "r+") as f:
        f["params"][0] += 1.0  # silent bit rot: the checksum must catch it
    summary, _ = train(tmp_path / "run", common + ["optimizer.epochs=3"], resume=True)
    assert "skipping checkpoint" in capsys.readouterr().err
    assert summary["epochs"] == 3  # resumed from epoch 2 and ran the third again


def test_mpirun_launches_too(datasets, tmp_path):
    from tests.helpers import mpiexec_path
    from pathlib import Path

    launcher = Path(mpiexec_path()).with_name("mpirun")
    if not launcher.exists():
        pytest.skip("this MPI installs no mpirun beside mpiexec")
    job = tmp_path / "job.toml"
    job.write_text(f'[data]\ntrain = "{datasets["linear"]}"\n[optimizer]\nkind = "normal"\n')
    result = run_command([str(launcher), "-n", "2", "python", "-m", "mpireg.train", str(job),
                          "--run-dir", str(tmp_path / "run")])
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["ranks"] == 2
