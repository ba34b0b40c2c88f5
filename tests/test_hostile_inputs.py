"""Hostile and malformed inputs, table-driven: each ends with one line naming the key, file or
step and the way out, a non-zero exit, no traceback, and nothing half-written.
(A start on issue 31's table; more surfaces to come.)"""
import numpy as np
import pytest

from mpireg.config import load_job
from mpireg.errors import ConfigError
from tests.helpers import run_overrides, sgd_job


@pytest.mark.parametrize("name", ["../../elsewhere", "a/b", "..", ""])
def test_a_job_name_cannot_leave_the_runs_folder(name):
    with pytest.raises(ConfigError, match=r"name: .* names the run directory runs/<name>"):
        load_job(None, ["data.train=x", f"name={name!r}".replace("'", '"')])


CLI_CASES = [
    # (overrides beyond the logistic SGD job, what stderr must say)
    (["comm.deterministic=true", "optimizer.lr=1e30"], "training diverged at step"),
    (["optimizer.lr=1e30"], "training diverged at step"),
    (["optimizer.path={n_alphas = 3}"], "optimizer.path: paths are fitted for model.kind = 'glm'"),
    (["optimizer.cv=3"], "optimizer.cv: cross-validation chooses a penalty from a path"),
]


@pytest.mark.parametrize("extra,message", CLI_CASES, ids=[c[1][:30] for c in CLI_CASES])
def test_each_bad_job_is_one_clear_error_on_every_rank(datasets, tmp_path, extra, message):
    result = run_overrides(2, tmp_path / "job.toml", [*sgd_job(datasets, "logistic"), "run.progress=false", *extra],
                           "--run-dir", tmp_path / "run")
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists() and not (tmp_path / "run" / "model.h5").exists()


def test_nan_logits_do_not_break_the_evaluation():
    from mpireg import metrics
    from mpireg.models import make_model

    model = make_model("logistic", 2, 2)
    params = np.array([np.nan, 0.0, 0.0])
    sums = np.zeros(metrics.sums_length(model))
    metrics.add_sums(model, params, np.ones((4, 2)), np.array([0.0, 1.0, 1.0, 0.0]), sums)
    assert np.isnan(metrics.finalize(model, sums, 0.0)["loss"])


def test_a_new_job_in_an_earlier_runs_directory_says_it_replaces_it(datasets, tmp_path):
    job = [*sgd_job(datasets, "logistic"), "run.progress=false", "optimizer.epochs=1"]
    assert run_overrides(1, tmp_path / "job.toml", job, "--run-dir", tmp_path / "run").returncode == 0
    again = run_overrides(1, tmp_path / "job.toml", [*job, "optimizer.lr=0.05"], "--run-dir", tmp_path / "run")
    assert again.returncode == 0
    assert "holds an earlier run (config.toml, summary.json, model.h5), which this job replaces" in again.stderr
    same = run_overrides(1, tmp_path / "job.toml", [*job, "optimizer.lr=0.05"], "--run-dir", tmp_path / "run")
    assert "holds an earlier run" not in same.stderr  # the same job again: nothing to say


def test_synth_counts_the_training_shards_apart_and_inspect_survives_a_closed_pipe(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "mpireg.data", "synth", "--task", "logistic", "--rows", "800",
                          "--features", "4", "--shards", "8", "--out", str(tmp_path / "d")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "wrote 8 training shard(s) and 1 test shard(s)" in out.stdout
    piped = subprocess.run(f"{sys.executable} -m mpireg.data inspect {tmp_path / 'd'} | head -1", shell=True,
                           capture_output=True, text=True, timeout=120)
    assert piped.stdout.count("\n") == 1 and "Traceback" not in piped.stderr
    # a command whose output outruns the pipe (inspect of thousands of shards): quiet, exit 0
    body = "import sys; from mpireg.log import run_command_line; " \
           "sys.exit(run_command_line('x', lambda: [print('line', i) for i in range(300000)]))"
    long = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -c \"{body}\" | head -1"],
                          capture_output=True, text=True, timeout=120)
    assert long.returncode == 0 and long.stdout == "line 0\n" and "BrokenPipeError" not in long.stderr


def test_inspect_reports_each_directory_as_its_own_data_set(tmp_path):
    import subprocess
    import sys

    from mpireg.data import write_shard

    write_shard(tmp_path / "a" / "part-0.h5", np.zeros((5, 3)), np.zeros(5), "regression")
    write_shard(tmp_path / "b" / "part-0.h5", np.zeros((4, 2)), np.array([0, 1, 0, 1]), "binary", 2)
    bad = np.zeros((3, 2))
    bad[1, 0] = np.nan
    write_shard(tmp_path / "c" / "part-0.h5", bad, np.zeros(3), "regression")
    out = subprocess.run([sys.executable, "-m", "mpireg.data", "inspect", *(str(tmp_path / n) for n in "abc")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "task regression, 3 features" in out.stdout and "task binary, 2 features" in out.stdout
    assert "NaN or Inf value at row 1" in out.stdout and "1 of 3 data set(s) failed the check" in out.stderr


def test_every_checkpoint_corrupt_is_an_error_not_a_fresh_start(datasets, tmp_path):
    job = [*sgd_job(datasets, "logistic"), "run.progress=false", "optimizer.epochs=2"]
    assert run_overrides(2, tmp_path / "job.toml", job, "--run-dir", tmp_path / "run").returncode == 0
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("ckpt-*.h5"))
    assert checkpoints
    for path in checkpoints:
        path.write_bytes(b"not a checkpoint" * 10)
    result = run_overrides(2, tmp_path / "job.toml", [*job, "optimizer.epochs=3"], "--run-dir", tmp_path / "run",
                           "--resume")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "every checkpoint in" in result.stderr and checkpoints[-1].name in result.stderr


def test_a_model_file_whose_coefficients_were_altered_is_refused(datasets, tmp_path):
    import subprocess
    import sys

    import h5py

    job = [*sgd_job(datasets, "logistic"), "run.progress=false", "optimizer.epochs=1"]
    assert run_overrides(1, tmp_path / "job.toml", job, "--run-dir", tmp_path / "run").returncode == 0
    model = tmp_path / "run" / "model.h5"
    with h5py.File(model, "r+") as f:
        f["params/coef"][0] += 1.0
    result = subprocess.run([sys.executable, "-m", "mpireg.predict", str(model), str(datasets["logistic"] / "test"),
                             "--out", str(tmp_path / "p.npy")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "do not match the checksum" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "p.npy").exists()


@pytest.mark.parametrize("fmt,line,bad", [
    ("libsvm", "1 1:0.5 3:nan\n", "line 2"), ("libsvm", "1 1:inf\n", "line 2"), ("libsvm", "nan 1:1\n", "line 2"),
    ("libsvm", "1 3:1 2:5 3:2\n", "each index once"),
    ("hashed", "1,nan,a\n", "line 2"), ("hashed", "1,inf,b\n", "line 2")])
def test_conversion_refuses_nan_and_inf_by_line(tmp_path, fmt, line, bad):
    import subprocess
    import sys

    good = "0 1:1 2:2\n" if fmt == "libsvm" else "0,1.5,a\n"
    src = tmp_path / ("in.svm" if fmt == "libsvm" else "in.csv")
    src.write_text(good + line + good)
    cmd = ([sys.executable, "-m", "mpireg.data", "convert", str(src), "--out", str(tmp_path / "out")]
           if fmt == "libsvm" else
           [sys.executable, "-m", "mpireg.data", "convert", str(src), "--label-col", "0", "--numeric", "1", "--sep", ",",
            "--categorical", "2", "--hash-bits", "8", "--out", str(tmp_path / "out")])
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and bad in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not list((tmp_path / "out").glob("*.h5")) if (tmp_path / "out").exists() else True


def test_api_errors_of_one_ranks_input_name_the_rank_on_every_rank(datasets):
    from tests.helpers import run_ranks

    result = run_ranks(2, datasets["linear"], module="tests.api.rank_errors_worker", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for rank in (0, 1):
        assert f"nan rank {rank}: rank 1: Input X contains NaN." in result.stdout
        assert f"paths rank {rank}: X: rank 1 passed" in result.stdout


@pytest.mark.parametrize("what", ["checkpoint", "model"])
def test_a_full_disk_leaves_no_half_written_file(tmp_path, monkeypatch, what):
    import errno

    import h5py

    from mpireg import checkpoint, model_io
    from mpireg.errors import DataError
    from mpireg.models import make_model

    real = h5py.File

    def full(path, mode="r", *args, **kwargs):
        f = real(path, mode, *args, **kwargs)
        if mode == "w":
            f.close()
            raise OSError(errno.ENOSPC, "No space left on device")
        return f

    monkeypatch.setattr(h5py, "File", full)
    model = make_model("linear", 3)
    with pytest.raises(DataError, match="could not be written \\(No space left on device\\)"):
        if what == "checkpoint":
            checkpoint.save_checkpoint(tmp_path, 5, {"params": np.zeros(4)}, {"step": 5}, keep=2)
        else:
            model_io.save_model(tmp_path / "model.h5", model, np.zeros(4), {}, {}, {})
    assert list(tmp_path.iterdir()) == []


def test_every_data_tool_option_has_help_text():
    from mpireg.convert.tool import build_parser

    parser = build_parser()
    missing = [(name, a.option_strings or a.dest) for group in parser._subparsers._group_actions
               for name, sub in group.choices.items() for a in sub._actions if not a.help and a.dest != "help"]
    assert not missing


def test_a_command_that_outlives_its_limit_says_what_it_waited_for():
    import sys

    from tests.helpers import finish_command, start_command

    proc = start_command([sys.executable, "-c", "import time; time.sleep(30)"])
    with pytest.raises(AssertionError, match=r"timed out after \d+ s \(0\.5 s scaled by a load of .* waiting for "
                                             r"this command to exit"):
        finish_command(proc, timeout=0.5)


def test_rows_in_any_index_order_convert_when_no_index_repeats(tmp_path):
    import subprocess
    import sys

    import h5py

    src = tmp_path / "in.svm"
    src.write_text("0 3:1 1:2\n1 1:1 2:2\n0 2:4\n")
    result = subprocess.run([sys.executable, "-m", "mpireg.data", "convert", str(src), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with h5py.File(next((tmp_path / "o").glob("*.h5"))) as f:
        assert f["indices"].shape[0] == 5
