"""Job files by path or by name: `mpireg-train quickstart` finds the job the package ships.

The README's jobs (the repository's `jobs/`) are copied into the package when it is built
(setup.py), so a wheel installed anywhere runs them by name from any directory; in a source
checkout (an editable install) the names find `jobs/` itself. A path that exists always wins.
"""
from __future__ import annotations

from pathlib import Path

from .errors import ConfigError

HERE = Path(__file__).resolve().parent


def packaged_jobs_dir() -> Path | None:
    """Where the named jobs live: inside the installed package, or the checkout's jobs/."""
    for candidate in (HERE / "jobs", HERE.parent / "jobs"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    return None


def packaged_jobs() -> list[str]:
    folder = packaged_jobs_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder else []


def find_job(spec: str | Path) -> Path:
    """The job file `spec` names: an existing path, or a packaged job's name ("quickstart",
    "quickstart.toml" or "jobs/quickstart.toml")."""
    path = Path(spec)
    if path.is_file():
        return path
    folder = packaged_jobs_dir()
    name = path.name[:-5] if path.name.endswith(".toml") else path.name
    if folder is not None and (folder / f"{name}.toml").is_file() and path.parent in (Path("."), Path("jobs")):
        return folder / f"{name}.toml"
    known = ", ".join(packaged_jobs()) or "none"
    raise ConfigError(f"{spec}: job file not found, and no packaged job of that name (packaged: {known})")
