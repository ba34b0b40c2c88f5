"""The examples run as a new user would run them, from an empty directory."""
import sys

from tests.helpers import ROOT, mpiexec_path, run_command


def test_one_process_example(tmp_path):
    result = run_command([sys.executable, ROOT / "examples" / "fit_one_process.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "accuracy 0.9" in result.stdout and (tmp_path / "breast_cancer.h5").is_file()


def test_mpiexec_example(tmp_path):
    result = run_command([mpiexec_path(), "-n", "2", sys.executable, ROOT / "examples" / "fit_mpiexec.py"],
                         cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 rank(s): shards -> test R^2 0.99" in result.stdout
    assert (tmp_path / "example-linear.h5").is_file()
