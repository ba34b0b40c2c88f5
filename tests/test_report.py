"""The report's figures, checked through matplotlib's objects: a title on every panel, one
legend per figure, one colour per run across every panel, the smoothed loss drawn over the raw
one, log scales only where the values span a wide range, and a bar for every run."""
import json

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_hex  # noqa: E402

from mpireg import report  # noqa: E402


def _run(tmp_path, name, losses, evals, summary=None):
    folder = tmp_path / name
    folder.mkdir()
    records = [{"type": "step", "step": 10 * (i + 1), "time_s": 0.1 * (i + 1), "loss": loss,
                **{p: 1.0 for p in report.PARTS}} for i, loss in enumerate(losses)]
    records += [{"type": "epoch", "epoch": e + 1, "train_loss": losses[min(e, len(losses) - 1)], "eval": ev}
                for e, ev in enumerate(evals)]
    (folder / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    (folder / "summary.json").write_text(json.dumps(summary or {"steps": 10 * len(losses)}))
    return report.load_run(folder)


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    a = _run(tmp_path, "a", list(0.5 + 0.1 * rng.random(30)), [{"accuracy": 0.8, "auc": 0.87}, {"accuracy": 0.82, "auc": 0.88}])
    b = _run(tmp_path, "b", list(np.geomspace(100, 0.01, 30)), [{"accuracy": 0.7, "auc": 0.8}])
    als = _run(tmp_path, "als", [], [], {"steps": 0, "time_compute_s": 2.0, "time_comm_s": 0.5})
    return [a, b, als]


def _line_colours(fig, name_colours):
    """{run colour: number of axes it appears in}."""
    seen = {}
    for ax in fig.axes:
        for colour in {to_hex(line.get_color()) for line in ax.get_lines()}:
            seen[colour] = seen.get(colour, 0) + 1
    return seen


def test_every_figure_has_titles_one_legend_and_one_colour_per_run(runs):
    colours = report.run_colours(runs)
    assert len(set(colours.values())) == len(runs)
    for fig in (report.figure_loss(runs), report.figure_eval(runs)):
        visible = [ax for ax in fig.axes if ax.get_visible()]
        assert all(ax.get_title() for ax in visible)
        assert len(fig.legends) == 1 and not any(ax.get_legend() for ax in visible)
        labels = [t.get_text() for t in fig.legends[0].get_texts()]
        assert labels == ["a", "b"]  # the runs it draws; the factorisation run has no curve here
        for ax in visible:
            used = {to_hex(line.get_color()) for line in ax.get_lines()}
            assert used <= {to_hex(colours[n]) for n in ("a", "b")}


def test_the_loss_is_smoothed_over_the_raw_batches(runs):
    fig = report.figure_loss(runs)
    lines = fig.axes[0].get_lines()
    raw, smooth = lines[0], lines[1]
    assert raw.get_alpha() < 0.5 and smooth.get_linewidth() > raw.get_linewidth()
    assert np.std(np.diff(smooth.get_ydata()[5:])) < np.std(np.diff(raw.get_ydata()[5:]))
    assert fig.axes[0].get_yscale() == "log"  # b's loss spans 100 to 0.01


def test_a_narrow_range_keeps_a_linear_axis(runs):
    fig = report.figure_eval(runs)
    accuracy = next(ax for ax in fig.axes if ax.get_title() == "held-out accuracy")
    assert accuracy.get_yscale() == "linear"


def test_every_run_has_a_bar_and_every_part_is_explained(runs):
    fig = report.figure_breakdown(runs)
    ax = fig.axes[0]
    names = [t.get_text() for t in ax.get_xticklabels()]
    assert names == ["a", "b", "als"]
    assert report.breakdown_seconds(runs[2]) == {"compute": 2.0, "comm": 0.5}  # no step records
    text = "\n".join(t.get_text() for t in fig.texts)
    assert all(report.EXPLAINED[p] in text for p in ("compute", "comm", "wait"))
    assert ax.get_title()


def test_make_report_writes_the_figures(runs, tmp_path):
    made = report.make_report([r["path"] for r in runs], tmp_path / "out")
    assert {p.name for p in made} == {"loss.png", "eval.png", "time_breakdown.png", "summary.md"}
    assert "Where the training time went" in (tmp_path / "out" / "summary.md").read_text()
