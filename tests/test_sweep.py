import pytest

from mpireg.errors import ConfigError
from mpireg.sweep import combinations, load_sweep, main, task_arguments


def _sweep(tmp_path, grid='"optimizer.lr" = [0.1, 0.5]\n"model.l2" = [0.0, 1e-3, 1e-2]\n'):
    job = tmp_path / "job.toml"
    job.write_text('[data]\ntrain = "somewhere"\n')
    path = tmp_path / "sweep.toml"
    path.write_text(f'job = "{job}"\n[grid]\n{grid}')
    return path, job


def test_grid_is_expanded_row_major(tmp_path, capsys):
    path, job = _sweep(tmp_path)
    assert len(combinations(load_sweep(path)[1])) == 6
    assert task_arguments(path, 4) == [str(job), "--set", "optimizer.lr=0.5", "--set", "model.l2=0.001"]
    assert main([str(path), "--count"]) == 0 and capsys.readouterr().out.strip() == "6"


def test_a_typo_in_the_grid_fails_every_task_at_once(tmp_path):
    path, _ = _sweep(tmp_path, '"optimizer.lrr" = [0.1]\n')
    with pytest.raises(ConfigError, match="optimizer.lrr: unknown key"):
        task_arguments(path, 0)


def test_task_out_of_range_and_bad_files(tmp_path):
    path, _ = _sweep(tmp_path)
    with pytest.raises(ConfigError, match="has tasks 0..5"):
        task_arguments(path, 6)
    bad = tmp_path / "bad.toml"
    bad.write_text('job = "x"\n[grid]\n"model.l2" = 3\n')
    with pytest.raises(ConfigError, match="non-empty list"):
        load_sweep(bad)
