"""User-facing errors: bad input, bad configuration. Printed once, without a traceback."""


class MpiregError(ValueError):
    """Base of every error caused by the user's input rather than by a bug. A ValueError, so
    code written against scikit-learn's estimators catches mpireg's the same way."""


class ConfigError(MpiregError):
    """A job file or override that does not validate; the message names the key."""


class DataError(MpiregError):
    """A shard that is missing, unreadable or inconsistent; the message names the file and field."""


class CollectiveError(MpiregError):
    """Raised on every rank when at least one rank failed inside `parallel.agree`.

    `rank` is the lowest failing rank (its message is the one reported), or None when naming it
    would mislead (rank 0 acting for every rank).
    """

    def __init__(self, message: str, rank, n_failed: int):
        super().__init__(message)
        self.rank = rank
        self.n_failed = n_failed
