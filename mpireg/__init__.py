"""mpireg: data-parallel training of regression-family models over MPI, from HDF5 shards."""

__version__ = "0.1.0"
