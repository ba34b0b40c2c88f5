"""The README's Python snippets run as written, in order, in one namespace (each takes no data
from outside: they make their own), in a scratch directory; and its quickstart command works."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


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
    """The keys the README's job-key table names: `a.b`, and the short names after a first key
    in one row (`optimizer.beta1`, `beta2`, `eps`), and `table.*` rows for a whole table."""
    text = README.read_text()
    section = text[text.index("## Job files"):text.index("## Synchronisation strategies")]
    keys = set()
    for line in section.splitlines():
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
    """The README's job-key table cannot go stale: every key of the config is in it (a
    `table.*` row covers a whole table), and it names no key the config does not have."""
    table = _table_keys()
    wildcards = {k[:-2] for k in table if k.endswith(".*")}
    missing = [k for k in _config_keys() if k not in table and not any(k.startswith(w + ".") for w in wildcards)]
    assert not missing, f"README.md's job-key table lacks {missing}"
    known = set(_config_keys())
    stale = [k for k in table if not k.endswith(".*") and k not in known]
    assert not stale, f"README.md's job-key table names keys the config does not have: {stale}"
