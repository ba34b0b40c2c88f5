"""The step loop's pieces: the one clock (nested phases, their totals) and the staleness gate
the asynchronous servers share."""
import time

import pytest

from mpireg.fit.progress import Clock, Meter, Progress
from mpireg.fit.topology.staleness import StalenessGate


def test_a_phase_counts_its_own_time_once():
    meter = Meter(Progress())
    clock = Clock(meter, None, Progress())
    with clock("step"):
        time.sleep(0.02)
        with clock("compute"):
            time.sleep(0.03)
        with clock("wait", scale=10):  # sampled once, stands for ten steps
            time.sleep(0.01)
    assert meter.window["compute"] == pytest.approx(0.03, abs=0.01)
    assert meter.window["wait"] == pytest.approx(0.1, abs=0.05)
    assert meter.totals["compute_s"] == pytest.approx(0.03, abs=0.01)
    assert meter.totals["comm_s"] == pytest.approx(0.02, abs=0.01)  # the step without what it timed inside


def test_clocks_go_onto_the_timeline_whole():
    class Timeline:
        events = []

        def add(self, name, start, end, **args):
            self.events.append((name, end - start, args["step"]))

    timeline, progress = Timeline(), Progress(step=7)
    clock = Clock(Meter(progress), timeline, progress)
    with clock("step"):
        with clock("compute"):
            time.sleep(0.01)
    (inner, inner_s, step), (outer, outer_s, _) = timeline.events
    assert (inner, outer, step) == ("compute", "step", 7) and outer_s >= inner_s


def test_the_gate_holds_a_worker_too_far_ahead():
    gate = StalenessGate([1, 2, 3], max_staleness=1)
    for worker, clock in ((1, 3), (2, 1), (3, 2)):
        gate.set_clock(worker, clock)
        gate.park(worker)
    assert gate.release() == [2, 3]  # worker 1 is 2 steps ahead of the slowest (worker 2)
    assert gate.parked == [1] and gate.max_clock_gap == 1
    gate.set_clock(2, 2)
    assert gate.release() == [1]
    gate.done(1)
    gate.done(2)
    gate.done(3)
    assert not gate.running


def test_a_finished_worker_does_not_hold_the_others():
    gate = StalenessGate([1, 2], max_staleness=0)
    gate.set_clock(1, 5)
    gate.park(1)
    assert gate.release() == []
    gate.done(2)  # the slowest finished: the leader may go on
    assert gate.release() == [1]
