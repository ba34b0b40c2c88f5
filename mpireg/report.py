"""`python -m mpireg.report RUN_DIR... --out DIR`: plots and a summary of one or several runs.

Writes, from each run's metrics.jsonl and summary.json:
    loss_vs_step.png    training loss against step, every run
    loss_vs_time.png    training loss against wall time, every run
    eval.png            held-out metrics against epoch
    time_breakdown.png  mean milliseconds per step in read, compute, pack, communicate, unpack,
                        update and wait, one bar per run
    summary.md          a table of the runs and links to the plots
Needs matplotlib (python -m pip install -e ".[bench]").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import MpiregError
from .log import run_command_line

PARTS = ("read_ms", "compute_ms", "pack_ms", "comm_ms", "unpack_ms", "update_ms", "wait_ms")


def load_run(path) -> dict:
    path = Path(path)
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise MpiregError(f"{path}: not a run directory (no metrics.jsonl)")
    records = []
    for number, line in enumerate(metrics.read_text().splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise MpiregError(f"{metrics}: line {number} is not JSON") from None
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return {"name": path.name, "path": path, "records": records, "summary": summary}


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise MpiregError("the report needs matplotlib: python -m pip install -e \".[bench]\"") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(runs, out: Path, x_key: str, filename: str, xlabel: str) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for run in runs:
        points = [(r[x_key], r["loss"]) for r in run["records"]
                  if r.get("type") in ("step", "iteration", "update") and x_key in r and "loss" in r]
        if points:
            ax.plot(*zip(*points), label=run["name"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("training loss (batch)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # (a run of Newton steps only has no step records)
        ax.legend()
    fig.tight_layout()
    path = out / filename
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_eval(runs, out: Path) -> Path:
    plt = _plt()
    names = sorted({k for run in runs for r in run["records"] if r.get("type") == "epoch"
                    for k in r.get("eval", {}) if k != "rows"} | {"train_loss"})
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for run in runs:
            epochs = [r for r in run["records"] if r.get("type") == "epoch"]
            values = [(r["epoch"], r["train_loss"] if name == "train_loss" else r.get("eval", {}).get(name))
                      for r in epochs]
            values = [(e, v) for e, v in values if v is not None]
            if values:
                ax.plot(*zip(*values), marker="o", label=run["name"])
        ax.set_title(name if name == "train_loss" else f"eval {name}")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend()
    fig.tight_layout()
    path = out / "eval.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_paths(runs, out: Path) -> Path | None:
    """A regularisation path's cross-validation curve, as cv.glmnet draws it: the mean held-out
    deviance against log alpha with one-standard-error bars, the chosen alpha marked; and the
    coefficients along the path."""
    with_path = [run for run in runs if (run["summary"] or {}).get("path")]
    if not with_path:
        return None
    plt = _plt()
    fig, axes = plt.subplots(len(with_path), 2, figsize=(11, 4 * len(with_path)), squeeze=False)
    for (curve, coefs), run in zip(axes, with_path):
        path = run["summary"]["path"]
        for entry in path["paths"]:
            alphas = entry["alphas"]
            label = f"l1_ratio {entry['l1_ratio']:g}"
            if "cv_deviance" in entry:
                curve.errorbar(alphas, entry["cv_deviance"], yerr=entry["cv_se"], fmt="o", ms=3, capsize=2,
                               label=label)
            coefs.plot(alphas, [row[:len(row) - 1] if len(row) > 1 else row for row in entry["coef"]], lw=1)
        for ax in (curve, coefs):
            ax.set_xscale("log")
            ax.set_xlabel("alpha")
            ax.axvline(path["alpha"], color="grey", ls="--", lw=1)
            ax.grid(True, alpha=0.3)
        curve.set_ylabel(f"held-out mean deviance ({path['folds']} folds)")
        curve.set_title(f"{run['name']}: cross-validation (chosen alpha {path['alpha']:.3g})")
        if path["folds"]:
            curve.legend()
        coefs.set_ylabel("coefficient")
        coefs.set_title(f"{run['name']}: the path ({path['passes']} passes)")
    fig.tight_layout()
    out_path = out / "path.png"
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def mean_breakdown(run) -> dict:
    steps = [r for r in run["records"] if r.get("type") == "step"]
    return {p: sum(r.get(p, 0.0) for r in steps) / len(steps) if steps else 0.0 for p in PARTS}


def plot_breakdown(runs, out: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(runs) + 3), 4.5))
    bottoms = [0.0] * len(runs)
    for part in PARTS:
        heights = [mean_breakdown(run)[part] for run in runs]
        ax.bar([run["name"] for run in runs], heights, bottom=bottoms, label=part[:-3])
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_ylabel("ms per step (mean)")
    ax.legend()
    fig.tight_layout()
    path = out / "time_breakdown.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_summary(runs, out: Path, plots) -> Path:
    lines = ["# mpireg run report", "", "| run | model | optimizer | strategy | ranks | steps | epochs | "
             "train loss | eval | samples/s | train s |", "|" + "---|" * 11]
    for run in runs:
        s = run["summary"]
        evaluation = ", ".join(f"{k} {v:.4g}" for k, v in s.get("eval", {}).items() if k != "rows") or "-"
        if not s:
            lines.append(f"| {run['name']} | (no summary.json: stopped before the end) |" + " |" * 9)
            continue
        lines.append(f"| {run['name']} | {s['model']} | {s['optimizer']} | {s['strategy']} | {s['ranks']} | "
                     f"{s['steps']} | {s['epochs']} | {s['train']['loss']:.6g} | {evaluation} | "
                     f"{s['samples_per_s']:,.0f} | {s['train_s']:.3g} |")
    lines += ["", "## Time per step (mean ms)", "", "| run | " + " | ".join(p[:-3] for p in PARTS) + " |",
              "|" + "---|" * (len(PARTS) + 1)]
    for run in runs:
        b = mean_breakdown(run)
        lines.append(f"| {run['name']} | " + " | ".join(f"{b[p]:.3f}" for p in PARTS) + " |")
    for run in runs:  # a GLM's coefficient table, as R's summary.glm prints it
        glm = (run["summary"] or {}).get("glm")
        if glm:
            from .fit.irls import coef_table_text

            lines += ["", f"## Coefficients: {run['name']}", "", "```", coef_table_text(glm), "```"]
        path = (run["summary"] or {}).get("path")
        if path:
            lines += ["", f"## Path: {run['name']}", "",
                      f"{len(path['paths'])} path(s) of {len(path['paths'][0]['alphas'])} penalties, "
                      f"{path['folds']} folds, {path['passes']} passes over the rows (+{path['refit_passes']} "
                      f"for the refit and its standard errors); chosen alpha {path['alpha']:.6g}, "
                      f"l1_ratio {path['l1_ratio']:g}."]
    lines += ["", "## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def make_report(run_dirs, out) -> list[Path]:
    runs = [load_run(p) for p in run_dirs]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = [plot_loss(runs, out, "step", "loss_vs_step.png", "step"),
             plot_loss(runs, out, "time_s", "loss_vs_time.png", "wall time, s"),
             plot_eval(runs, out), plot_breakdown(runs, out)]
    plots += [p for p in (plot_paths(runs, out),) if p is not None]
    return plots + [write_summary(runs, out, plots)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpireg.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (each with metrics.jsonl)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return run_command_line("mpireg.report", lambda: print("\n".join(map(str, make_report(args.runs, args.out)))))


if __name__ == "__main__":
    sys.exit(main())
