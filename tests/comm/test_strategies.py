"""Every strategy against a NumPy sum of the gathered inputs, under mpiexec, with awkward lengths
(0, 1, primes, larger than one chunk), float32, float64 and 16-bit wire words."""
import pytest

from tests.helpers import run_ranks

CASES = [("ring", p) for p in (1, 2, 3, 4, 5, 8)] + [("allreduce", p) for p in (1, 2, 3, 4)] \
    + [("ps", p) for p in (1, 3)] + [("ps-async", 2)] \
    + [("hierarchical", p) for p in (1, 2, 3, 5)] \
    + [("hierarchical:2", 4), ("hierarchical:2", 5), ("hierarchical:1", 3)]  # forced nodes


@pytest.mark.parametrize("strategy,ranks", CASES)
def test_strategy_sums_like_numpy(strategy, ranks):
    result = run_ranks(ranks, strategy, 2**30, 4 * 2**20, module="tests.comm.strategy_worker", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == ranks


@pytest.mark.parametrize("strategy,ranks", [("allreduce", 3), ("ring", 3), ("ring", 5)])
def test_large_messages_are_split_correctly(strategy, ranks):
    """A tiny message limit (12 bytes) and ring chunk (8 bytes) force every buffer to be split:
    the same checks must still pass (the path a > 2 GiB buffer takes)."""
    result = run_ranks(ranks, strategy, 12, 8, module="tests.comm.strategy_worker", timeout=180)
    assert result.returncode == 0, result.stderr


def test_message_pieces_stay_below_int_max():
    import numpy as np
    from mpi4py import MPI

    from mpireg.comm.allreduce import AllreduceReducer
    from mpireg.comm.reducer import INT_MAX
    from mpireg.config import CommConfig

    strategy = AllreduceReducer(MPI.COMM_SELF, CommConfig(max_message_bytes=2**40))
    big = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(2**31 + 5,), strides=(0,))
    pieces = strategy.message_pieces(big)  # views only: nothing is allocated
    assert [p.size for p in pieces] == [INT_MAX, 6]


@pytest.mark.parametrize("strategy,ranks", [("allreduce", 3), ("ring", 4), ("ps", 3), ("ps-async", 2)])
def test_staged_through_host_mirrors(strategy, ranks):
    """The wrapper GPU ranks use when MPI is not CUDA-aware gives the same sums and steps."""
    result = run_ranks(ranks, strategy, 2**30, 4 * 2**20, "staged", module="tests.comm.strategy_worker",
                       timeout=120)
    assert result.returncode == 0, result.stderr
