"""Every strategy against a NumPy sum of the gathered inputs, on 1, 2, 3 and 4 ranks."""
import pytest

from mpireg.comm import STRATEGIES
from tests.helpers import run_ranks


@pytest.mark.parametrize("ranks", [1, 2, 3, 4])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_strategy_sums_like_numpy(strategy, ranks):
    result = run_ranks(ranks, strategy, module="tests.comm.strategy_worker", timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == ranks
