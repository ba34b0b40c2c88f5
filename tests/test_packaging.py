"""The package stands alone: the built wheel, installed outside the source tree, runs the
quickstart from an empty directory by name and with no job at all, `mpireg-report` and
`python -m mpireg` work, and a missing MPI library is one clear error."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mpireg.errors import ConfigError
from mpireg.jobfiles import find_job, packaged_jobs
from tests.helpers import mpiexec_path

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 900  # compiling the C extensions from scratch: ~1 minute here, more under load


def _run(cmd, cwd, env, timeout=300):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the source tree (nothing written into the checkout),
    installed into a folder of its own; (site folder, environment that imports it)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "runs", "data", "__pycache__", "*.so", "*.egg-info", ".pytest_cache"))
    env = dict(os.environ, PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    _run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-w",
          str(root / "dist")], root, env, BUILD_TIMEOUT)
    wheel = next((root / "dist").glob("mpireg-*.whl"))
    site = root / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)], root, env)
    return site, dict(env, PYTHONPATH=str(site))


def test_the_wheel_imports_from_its_own_folder(installed, tmp_path):
    site, env = installed
    out = _run([sys.executable, "-c", "import mpireg; print(mpireg.__file__)"], tmp_path, env).stdout
    assert out.strip().startswith(str(site))
    assert (site / "mpireg" / "jobs" / "quickstart.toml").is_file()


def test_the_wheel_runs_the_quickstart_from_an_empty_directory(installed, tmp_path):
    site, env = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    fast = ["--set", "optimizer.epochs=1", "--set", "run.progress=false"]
    _run([mpiexec_path(), "-n", "2", sys.executable, "-m", "mpireg.train", *fast], empty, env)  # no job: the quickstart
    assert (empty / "runs" / "quickstart" / "model.h5").is_file() and (empty / "data" / "quickstart").is_dir()
    script = site / "bin" / "mpireg-train"
    _run([mpiexec_path(), "-n", "2", str(script), "quickstart", "--run-dir", "again", *fast], empty, env)
    assert (empty / "again" / "summary.json").is_file()
    _run([str(site / "bin" / "mpireg-report"), "runs/quickstart", "--out", "report"], empty, env)
    assert (empty / "report" / "summary.md").is_file()
    overview = _run([sys.executable, "-m", "mpireg"], empty, env).stdout
    assert "mpireg-train" in overview and "quickstart" in overview


def test_jobs_are_found_by_path_or_by_name(tmp_path):
    assert find_job("quickstart").resolve() == find_job("jobs/quickstart.toml").resolve() == find_job("quickstart.toml").resolve()
    assert "poisson_claims" in packaged_jobs()
    own = tmp_path / "mine.toml"
    own.write_text("")
    assert find_job(own) == own
    with pytest.raises(ConfigError, match="nosuch: job file not found, and no packaged job of that name"):
        find_job("nosuch")
    with pytest.raises(ConfigError, match="job file not found"):
        find_job(tmp_path / "elsewhere" / "quickstart.toml")  # a path, not a name


def test_a_missing_mpi_library_is_one_clear_error(monkeypatch, capsys):
    from mpireg.mpi_runtime import load_mpi

    _without_mpi(monkeypatch)
    assert load_mpi() is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no MPI library could be loaded" in err and "mpireg[mpi]" in err


def test_the_api_without_mpi_raises_the_same_words(monkeypatch):
    from mpireg import agreement
    from mpireg.errors import MpiregError

    monkeypatch.setattr(agreement, "_world", None)
    _without_mpi(monkeypatch)
    with pytest.raises(MpiregError, match=r"no MPI library could be loaded .*mpireg\[mpi\]"):
        agreement.default_comm()


def _without_mpi(monkeypatch):
    """`from mpi4py import MPI` fails as it does where libmpi cannot be loaded."""
    import mpi4py

    monkeypatch.delattr(mpi4py, "MPI", raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py.MPI", None)
