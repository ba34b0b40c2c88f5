"""Honest resumes: resuming a finished run trains nothing and leaves its summary as it was; one
with epochs to go trains only those, counts only this run's rows in its throughput, and records
every run of the fit in summary.json's segments."""
import json

from tests.helpers import run_overrides, sgd_job


def _train(datasets, tmp_path, *extra, epochs=2):
    result = run_overrides(1, tmp_path / "job.toml", [*sgd_job(datasets, "logistic"), "run.progress=false",
                                                      f"optimizer.epochs={epochs}", "run.checkpoint_keep=2"],
                           "--run-dir", tmp_path / "run", *extra)
    assert result.returncode == 0, result.stderr
    return result


def test_resuming_a_finished_run_trains_nothing_and_keeps_its_summary(datasets, tmp_path):
    _train(datasets, tmp_path)
    before = (tmp_path / "run" / "summary.json").read_bytes()
    model = (tmp_path / "run" / "model.h5").read_bytes()
    result = _train(datasets, tmp_path, "--resume")
    assert "nothing left to train: the run had finished (epoch 2" in result.stderr + result.stdout
    assert (tmp_path / "run" / "summary.json").read_bytes() == before
    assert (tmp_path / "run" / "model.h5").read_bytes() == model


def test_a_resumed_run_counts_only_its_own_rows_and_records_its_segments(datasets, tmp_path):
    _train(datasets, tmp_path)
    first = json.loads((tmp_path / "run" / "summary.json").read_text())
    _train(datasets, tmp_path, "--resume", epochs=3)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    earlier, this = summary["segments"]
    assert not earlier["resumed"] and this["resumed"]
    assert (earlier["epochs"], this["epochs"]) == (2, 1) and this["from_step"] == first["steps"]
    assert this["samples"] * 2 == earlier["samples"]  # one epoch's rows against two
    assert summary["samples_per_s"] == this["samples"] / summary["train_s"]
    assert summary["epochs"] == 3
