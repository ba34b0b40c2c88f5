"""`--profile`: a Chrome-trace timeline of every rank's steps, merged into one file.

Each rank records complete events (read, compute, communicate, update, evaluate, checkpoint)
against its own clock started at a common barrier; at the end rank 0 gathers them and writes
`trace.json`, one track per rank, which Perfetto (ui.perfetto.dev) and chrome://tracing open.
When profiling is off, `add` returns at once and nothing is kept.
"""
from __future__ import annotations

import json
import os
import time


class Timeline:
    def __init__(self, comm, enabled: bool):
        self.comm = comm
        self.enabled = enabled
        self.events = []
        if enabled:
            comm.Barrier()  # a common origin: tracks line up to within the barrier's skew
        self.origin = time.perf_counter()

    def add(self, name: str, start: float, end: float, **args) -> None:
        if self.enabled:
            self.events.append((name, start - self.origin, end - start, args))

    def write(self, path) -> None:
        """Collective: every rank's events go to rank 0, which writes one trace file."""
        if not self.enabled:
            return
        gathered = self.comm.gather(self.events, root=0)  # once, at the end: pickling is fine
        if self.comm.rank != 0:
            return
        trace = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "mpireg"}}]
        for rank, events in enumerate(gathered):
            trace.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": rank,
                          "args": {"name": f"rank {rank}"}})
            trace += [{"name": name, "ph": "X", "pid": 0, "tid": rank, "ts": round(ts * 1e6, 3),
                       "dur": round(dur * 1e6, 3), "args": args} for name, ts, dur, args in events]
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump({"traceEvents": trace, "displayTimeUnit": "ms"}, f)
        os.replace(tmp, path)
