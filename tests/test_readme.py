"""The README's Python snippets run as written, in order, in one namespace (each takes no data
from outside: they make their own), in a scratch directory; and its quickstart command works."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
JOB_KEYS = ROOT / "docs" / "jobs.md"  # the job-key table


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_has_python_snippets():
    assert len(python_blocks()) >= 3


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_every_python_snippet_runs(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in python_blocks()[:index + 1]:  # a snippet may use the names of those before it
        exec(compile(block, f"README.md python block {index}", "exec"), namespace)


def _config_keys(cls=None, prefix=""):
    """Every job key, dotted (a nested table's keys under its name)."""
    import dataclasses
    import typing

    from mpireg.config import JobConfig

    cls = cls or JobConfig
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if typing.get_origin(hint) is typing.Union:
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        if dataclasses.is_dataclass(hint):
            yield from _config_keys(hint, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def _table_keys() -> set:
    """The keys docs/jobs.md's table names: `a.b`, and the short names after a first key in one
    row (`optimizer.beta1`, `beta2`, `eps`), and `table.*` rows for a whole table."""
    keys = set()
    for line in JOB_KEYS.read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        names = re.findall(r"`([^`]+)`", first)
        if not names:
            continue
        head = names[0]
        keys.add(head)
        parent = head.rsplit(".", 1)[0] if "." in head else ""
        keys.update(f"{parent}.{n}" for n in names[1:] if "." not in n)
    return keys


def test_the_job_key_table_names_every_key():
    """The job-key table (docs/jobs.md) cannot go stale: every key of the config is in it (a
    `table.*` row covers a whole table), and it names no key the config does not have."""
    table = _table_keys()
    wildcards = {k[:-2] for k in table if k.endswith(".*")}
    missing = [k for k in _config_keys() if k not in table and not any(k.startswith(w + ".") for w in wildcards)]
    assert not missing, f"docs/jobs.md's job-key table lacks {missing}"
    known = set(_config_keys())
    stale = [k for k in table if not k.endswith(".*") and k not in known]
    assert not stale, f"docs/jobs.md's job-key table names keys the config does not have: {stale}"


# ------------------------------------------------------------------ the shell snippets
# Lines that need what the README cannot make: the user's own files, a site's modules, a Slurm
# controller, a network install. Every other line of every ```bash block runs.
NEEDS_OUTSIDE = {
    "python -m pytest": "the test suite itself",
    "python -m pip install": "installs packages (CI's set-up runs it)",
    "module load": "a site's environment modules",
    "sbatch ": "a Slurm controller (tests/test_slurm.py runs the scripts)",
    "train.svm": "the user's libsvm file",
    "clicks.tsv": "the user's delimited file",
    "part-*.parquet": "the user's Parquet files",
    "claims.parquet": "the user's Parquet file",
    "ratings.csv": "the user's ratings",
}
# Sizes scaled down to what CI affords; the commands are otherwise run as written.
SCALED = [(r"--rows \d{6,}", "--rows 20000"), (r"-n 8 ", "-n 2 ")]


def shell_lines() -> list[str]:
    """Every command of the README's ```bash blocks, continuation lines joined, comments off."""
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        for command in re.sub(r"\\\n\s*", " ", block).splitlines():
            command = command.split(" #")[0].strip() if not command.lstrip().startswith("#") else ""
            if command:
                lines.append(command)
    return lines


def test_every_shell_line_runs_or_says_why_not(tmp_path):
    """The README's commands in order, in an empty directory, as a new user types them (ranks
    and rows scaled down): each exits 0 and leaves no traceback."""
    import os
    import sys

    from tests.helpers import load_per_core

    env = dict(os.environ, PYTHONPATH=str(ROOT), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    ran = 0
    for line in shell_lines():
        if any(marker in line for marker in NEEDS_OUTSIDE):
            continue
        command = line
        for pattern, replacement in SCALED:
            command = re.sub(pattern, replacement, command)
        limit = 300 * max(1.0, load_per_core())
        try:
            result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True,
                                    text=True, timeout=limit, start_new_session=True, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"README line did not finish in {limit:.0f} s: {command}")
        assert result.returncode == 0 and "Traceback" not in result.stderr, \
            f"README line failed (exit {result.returncode}): {command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        ran += 1
    assert ran >= 15, f"only {ran} README commands ran"
