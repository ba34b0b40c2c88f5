"""`python -m mpireg.report RUN_DIR... --out DIR` (or `mpireg-report`): figures and a summary of
one or several runs.

Writes, from each run's metrics.jsonl and summary.json, one colour per run in every figure and
one legend per figure:
    loss.png            the training loss against step and against wall time: a smoothed line
                        (an exponential moving average), the batch losses faint behind it
    eval.png            a grid, one panel per metric, of the training loss and the held-out
                        metrics at the end of each epoch
    time_breakdown.png  where a run's training time went, one bar per run (the categories are
                        explained under the bars)
    path.png            a regularisation path's cross-validation curve and coefficients (GLM
                        paths only)
    summary.md          a table of the runs, the GLMs' coefficient tables, links to the figures
Log scales only where a curve's values span more than a factor of LOG_RANGE. Needs matplotlib
(python -m pip install "mpireg[report]", or the test extra).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from .errors import MpiregError
from .log import run_command_line

PARTS = ("read_ms", "compute_ms", "pack_ms", "comm_ms", "unpack_ms", "update_ms", "wait_ms")
# What each part of the time breakdown is (printed under the bars)
EXPLAINED = {
    "read": "read: waiting for the rows of the next batch (disk, HDF5)",
    "compute": "compute: this rank's gradient (or its solver's pass over its rows)",
    "pack": "pack: copying (and compressing) the gradient into the wire buffer",
    "comm": "comm: the reduction on the wire (allreduce, ring, servers)",
    "unpack": "unpack: copying the reduced gradient back",
    "update": "update: the optimizer's step on the parameters",
    "wait": "wait: idle at the reduction, for the slowest rank",
}
LOG_RANGE = 30.0   # a panel's y axis is logarithmic when its values span more than this factor
SMOOTHING = 0.9    # the loss curve's exponential moving average: weight of the past


def load_run(path) -> dict:
    path = Path(path)
    metrics = path / "metrics.jsonl"
    if not metrics.is_file():
        raise MpiregError(f"{path}: not a run directory (no metrics.jsonl)")
    records = []
    for number, line in enumerate(metrics.read_text().splitlines(), 1):
        if not line.strip():
            continue
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
        raise MpiregError("the report needs matplotlib: python -m pip install \"mpireg[report]\" "
                          "(or -e \".[report]\" in a checkout)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def run_colours(runs) -> dict:
    """One colour per run, the same in every figure."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    return {run["name"]: palette[i % len(palette)] for i, run in enumerate(runs)}


def _scale(ax, values) -> None:
    positive = [v for v in values if v is not None and v > 0 and math.isfinite(v)]
    if positive and max(positive) / min(positive) > LOG_RANGE:
        ax.set_yscale("log")


def _legend(fig, runs, colours, shown=None) -> None:
    """One legend for the figure: the runs it draws (`shown`: their names; default all)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colours[run["name"]], lw=2, label=run["name"]) for run in runs
               if shown is None or run["name"] in shown]
    fig.legend(handles=handles, loc="upper center", ncol=min(len(runs), 5), frameon=False,
               bbox_to_anchor=(0.5, 1.0))


def smoothed(values, weight: float = SMOOTHING) -> list:
    """An exponential moving average, bias-corrected (the first values are not pulled to 0)."""
    out, average = [], 0.0
    for i, value in enumerate(values, 1):
        average = weight * average + (1 - weight) * value
        out.append(average / (1 - weight ** i))
    return out


def figure_loss(runs):
    plt = _plt()
    colours = run_colours(runs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    everything, shown = [], set()
    for key, ax, label in (("step", axes[0], "step"), ("time_s", axes[1], "wall time (s)")):
        for run in runs:
            points = [(r[key], r["loss"]) for r in run["records"]
                      if r.get("type") in ("step", "iteration", "update") and key in r and "loss" in r]
            if not points:
                continue
            x, y = zip(*points)
            colour = colours[run["name"]]
            ax.plot(x, y, color=colour, alpha=0.25, lw=1)
            ax.plot(x, smoothed(y), color=colour, lw=2)
            everything += y
            shown.add(run["name"])
        ax.set_xlabel(label)
        ax.set_ylabel("training loss (objective)")
        ax.grid(True, alpha=0.3)
    axes[0].set_title("training loss by step (smoothed; raw batches faint)")
    axes[1].set_title("training loss by wall time")
    for ax in axes:
        _scale(ax, everything)
    _legend(fig, runs, colours, shown)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def figure_eval(runs):
    plt = _plt()
    colours = run_colours(runs)
    names = ["train_loss"] + sorted({k for run in runs for r in run["records"] if r.get("type") == "epoch"
                                     for k in r.get("eval", {}) if k != "rows"})
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.4 * rows + 0.6), squeeze=False)
    shown = set()
    for index, name in enumerate(names):
        ax = axes[index // columns][index % columns]
        values = []
        for run in runs:
            epochs = [r for r in run["records"] if r.get("type") == "epoch"]
            points = [(r["epoch"], r["train_loss"] if name == "train_loss" else r.get("eval", {}).get(name))
                      for r in epochs]
            points = [(e, v) for e, v in points if v is not None]
            if points:
                ax.plot(*zip(*points), marker="o", ms=3, color=colours[run["name"]])
                values += [v for _, v in points]
                shown.add(run["name"])
        ax.set_title("training loss (epoch mean)" if name == "train_loss" else f"held-out {name}")
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        _scale(ax, values)
    for index in range(len(names), rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    _legend(fig, runs, colours, shown)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / (3.4 * rows + 0.6)))
    return fig


def breakdown_seconds(run) -> dict:
    """Seconds of training in each part: from the step records (their mean per step times the
    steps), or, for a run without step records (full-batch solvers, ALS), its compute and comm
    totals from summary.json."""
    steps = [r for r in run["records"] if r.get("type") == "step"]
    summary = run["summary"] or {}
    total_steps = summary.get("steps") or (steps[-1]["step"] if steps else 0)
    if steps:
        return {p[:-3]: sum(r.get(p, 0.0) for r in steps) / len(steps) * total_steps / 1e3 for p in PARTS}
    return {"compute": summary.get("time_compute_s", 0.0), "comm": summary.get("time_comm_s", 0.0)}


HATCHES = {"read": "", "compute": "//", "pack": "..", "comm": "xx", "unpack": "++", "update": "\\\\", "wait": "oo"}


def figure_breakdown(runs):
    from matplotlib.patches import Patch

    plt = _plt()
    colours = run_colours(runs)
    fig, ax = plt.subplots(figsize=(max(6.5, 1.5 * len(runs) + 4), 5.2))
    parts = [p[:-3] for p in PARTS]
    shares = [breakdown_seconds(run) for run in runs]
    bottoms = [0.0] * len(runs)
    used = []
    for part in parts:
        heights = [share.get(part, 0.0) for share in shares]
        if not any(heights):
            continue
        used.append(part)
        ax.bar([run["name"] for run in runs], heights, bottom=bottoms, hatch=HATCHES[part],
               color=[colours[run["name"]] for run in runs], edgecolor="black", alpha=0.8)
        bottoms = [b + h for b, h in zip(bottoms, heights)]
    ax.set_ylabel("seconds of training")
    ax.set_title("where the training time went (a bar per run; hatching: the parts)")
    fig.legend(handles=[Patch(facecolor="white", edgecolor="black", hatch=HATCHES[p], label=p) for p in used],
               loc="upper right", frameon=False)
    fig.text(0.01, 0.01, "\n".join(EXPLAINED[p] for p in used), fontsize=8, va="bottom")
    fig.tight_layout(rect=(0, 0.05 + 0.035 * len(used), 0.85, 1))
    return fig


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=100)
    _plt().close(fig)
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


def write_summary(runs, out: Path, plots) -> Path:
    lines = ["# mpireg run report", "", "| run | model | optimizer | strategy | ranks | steps | epochs | "
             "train loss | eval | samples/s | train s |", "|" + "---|" * 11]
    for run in runs:
        s = run["summary"]
        evaluation = ", ".join(f"{k} {v:.4g}" for k, v in s.get("eval", {}).items() if k != "rows") or "-"
        if not s:
            lines.append(f"| {run['name']} | (no summary.json: stopped before the end) |" + " |" * 9)
            continue
        loss = s.get("train", {}).get("loss")
        cells = [s.get("model", "-"), s.get("optimizer", "-"), s.get("strategy", "-"), s.get("ranks", "-"),
                 s.get("steps", "-"), s.get("epochs", "-"), f"{loss:.6g}" if loss is not None else "-", evaluation,
                 f"{s['samples_per_s']:,.0f}" if "samples_per_s" in s else "-",
                 f"{s['train_s']:.3g}" if "train_s" in s else "-"]
        lines.append(f"| {run['name']} | " + " | ".join(map(str, cells)) + " |")
    parts = [p[:-3] for p in PARTS]
    lines += ["", "## Where the training time went (seconds)", "", "| run | " + " | ".join(parts) + " |",
              "|" + "---|" * (len(parts) + 1)]
    for run in runs:
        b = breakdown_seconds(run)
        lines.append(f"| {run['name']} | " + " | ".join(f"{b.get(p, 0.0):.3g}" for p in parts) + " |")
    lines += [""] + [f"- {EXPLAINED[p]}" for p in parts]
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
    plots = [_save(figure_loss(runs), out / "loss.png"), _save(figure_eval(runs), out / "eval.png"),
             _save(figure_breakdown(runs), out / "time_breakdown.png")]
    plots += [p for p in (plot_paths(runs, out),) if p is not None]
    return plots + [write_summary(runs, out, plots)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="mpireg-report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="run directories (each with metrics.jsonl)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    return run_command_line("mpireg.report", lambda: print("\n".join(map(str, make_report(args.runs, args.out)))))


if __name__ == "__main__":
    sys.exit(main())
