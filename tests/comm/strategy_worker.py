"""Run under mpiexec by test_strategies.py: checks one strategy's reductions (its reducer) against
a NumPy sum of the gathered inputs, for awkward lengths and distinct values per rank, its step
(its step topology), and that every rank ends with the same bits. Exits non-zero on failure
(MPI_Abort, so no rank is left waiting).

    python -m tests.comm.strategy_worker STRATEGY max_message_bytes ring_chunk_bytes [staged]
"""
import sys
import traceback

import numpy as np
from mpi4py import MPI

from mpireg.capabilities import STRATEGIES
from mpireg.comm import make_reducer, packing, verify_identical
from mpireg.comm.codecs import make_codec
from mpireg.config import CommConfig
from mpireg.errors import MpiregError
from mpireg.fit.topology import EXTRA_SLOTS, make_step_topology

LENGTHS = [0, 1, 2, 3, 7, 31, 1009, 65537]


def check(name: str, max_message_bytes: int, ring_chunk_bytes: int, staged: bool = False) -> None:
    comm = MPI.COMM_WORLD.Dup()
    name, _, per_node = name.partition(":")  # "hierarchical:2": nodes of 2 ranks
    settings = CommConfig(strategy=name, max_message_bytes=max_message_bytes,
                          ring_chunk_bytes=ring_chunk_bytes, ranks_per_node=int(per_node or 0))
    # staged: every buffer goes through the host-mirror wrapper a GPU rank uses with an MPI that
    # is not CUDA-aware (here the "device" is host memory, so the copies are real and checked)
    reducer = make_reducer(STRATEGIES[name].reducer, comm, settings, staged)
    topology = make_step_topology(name, comm, settings, reducer, staged)
    rank, size = comm.rank, comm.size
    # With messages of a few bytes every element is its own message: lengths up to 1009 take each
    # splitting path, where 65537 took minutes of point-to-point calls on an oversubscribed host.
    lengths = LENGTHS if max_message_bytes >= 1024 else [n for n in LENGTHS if n <= 1009]
    for dtype in (np.float32, np.float64):
        for n in lengths:
            rng = np.random.default_rng([rank, n])
            mine = (rng.standard_normal(n) + 1000 * rank).astype(dtype)  # distinct per rank
            expected = np.sum(comm.allgather(mine), axis=0, dtype=np.float64) if n else mine
            buf = mine.copy()
            reducer.allreduce(buf)
            np.testing.assert_allclose(buf, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
            verify_identical(comm, buf, step=n)  # every rank ends with the same bits

    for codec_name in ("fp16", "bf16"):  # reductions on 16-bit wire words
        codec = make_codec(codec_name)
        n = 4099
        values = np.random.default_rng([rank, 5]).uniform(-1, 1, n).astype(np.float32)
        wire = np.empty(n, np.uint16)
        packing.default.pack([values], wire, 1.0, codec_name)
        reducer.allreduce(wire, codec)
        got = np.empty(n, np.float32)
        packing.default.unpack(wire, [got], 1.0, codec_name)
        expected = np.sum(comm.allgather(values), axis=0)
        tol = {"fp16": 2e-3, "bf16": 2e-2}[codec_name] * size
        np.testing.assert_allclose(got, expected, atol=tol)
        verify_identical(comm, wire, step=-1)
        codec.free()

    if topology.synchronous:
        check_step(topology, reducer, comm)
    try:  # diverged parameters are caught
        verify_identical(comm, np.full(3, float(rank)), step=99)
        assert size == 1, "divergence not detected"
    except MpiregError as exc:
        assert "diverged across ranks at step 99" in str(exc)
    topology.finish()
    reducer.finish()


def check_step(topology, reducer, comm) -> None:
    """step(): sums of gradients and counts combine into the global mean; an idle rank sends zeros."""
    rank, size = comm.rank, comm.size
    params = np.zeros(5)
    topology.setup(params)
    buffer = topology.step_buffer(5 + EXTRA_SLOTS, np.float64)  # hierarchical: in shared memory
    if rank != size - 1 or size == 1:
        buffer[:5] = np.arange(5) * (rank + 1)
        buffer[5], buffer[6] = 10.0 * (rank + 1), rank + 1
    buffer[7] = 1.0 if rank == size - 1 else 0.0  # one rank votes to stop: everyone learns it
    active = range(size) if size == 1 else range(size - 1)
    total = sum(r + 1 for r in active)

    def update(p, reduced):
        n = p.shape[0]
        p -= reduced[:n] / reduced[n + 1]
        return reduced[n:].astype(np.float64)

    loss, count, stop_votes, _ = topology.step(params, buffer, update)
    assert count == total and loss == 10.0 * total and stop_votes == 1
    np.testing.assert_allclose(params, -np.arange(5) * total / total)
    verify_identical(comm, params, step=1)


if __name__ == "__main__":
    try:
        check(sys.argv[1], *(int(a) for a in sys.argv[2:4]), staged="staged" in sys.argv[4:])
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)
    print(f"ok {MPI.COMM_WORLD.rank}")
