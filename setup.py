"""Install mpireg; build the fused-packing C extension from csrc/ when a compiler is present."""
import functools
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


# The kernels' loops start on 64-byte boundaries: the same instructions of the float64 linear
# gradient pass ran at 0.83-0.86 or 0.88-0.93 of a streaming read depending on where its loop
# fell, and at 0.87-0.89 in both builds with these flags (docs/performance.md section 1). GCC's
# flags; other compilers keep their defaults.
ALIGN_HOT_LOOPS = ["-falign-functions=64", "-falign-loops=64"]

# The k-fold path's pass (csrc/cpath.c) computes each row's residuals for 8 models with
# vmath.h's log1p, an 18-term series that GCC's default (16) leaves a loop: unrolled, two rows'
# chains interleave, 59 -> 54 ns a row of residuals on the Zen 4 host. GCC's flags.
GCC_FLAGS = {"mpireg._cpath": ["--param=max-completely-peel-times=24"]}


@functools.lru_cache(maxsize=None)  # one `--version` for all the extensions
def _is_gcc(compiler: str) -> bool:
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return "Free Software Foundation" in version


class BuildPyWithJobs(build_py):
    """The README's jobs ship inside the package (mpireg/jobs/*.toml), so that a wheel installed
    anywhere runs them by name (`mpireg-train quickstart`, mpireg/jobfiles.py); the repository
    keeps them in jobs/, where a checkout finds them."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "mpireg" / "jobs"
        target.mkdir(parents=True, exist_ok=True)
        for job in sorted((HERE / "jobs").glob("*.toml")):
            shutil.copy2(job, target / job.name)


class OptionalBuildExt(build_ext):
    """The NumPy fallback gives identical results, so a missing compiler must not block install."""

    def run(self):
        try:
            super().run()
        except Exception as exc:  # noqa: BLE001 - any toolchain failure
            print(f"mpireg: C extension not built ({exc}); using the NumPy fallback")

    def build_extension(self, ext):
        if _is_gcc(self.compiler.compiler_so[0]):
            ext.extra_compile_args = ext.extra_compile_args + ALIGN_HOT_LOOPS + GCC_FLAGS.get(ext.name, [])
        try:
            super().build_extension(ext)
        except Exception as exc:  # noqa: BLE001
            print(f"mpireg: {ext.name} not built ({exc}); using the NumPy fallback")


# One extension per C file: csrc/cpack.c -> mpireg._cpack, csrc/cgrad.c -> mpireg._cgrad.
# -fopenmp-simd lets `#pragma omp simd reduction` vectorise sums without -ffast-math's licence.
# -Wno-psabi: the vector helpers of csrc/vmath.h are always inlined, so no 32-byte vector
# crosses a call and GCC's note on that ABI is noise.
extensions = [
    Extension(
        f"mpireg._{source.stem}",
        sources=[str(source.relative_to(HERE))],
        depends=[str(h.relative_to(HERE)) for h in (HERE / "csrc").glob("*.h")],
        extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra", "-fopenmp-simd", "-ffp-contract=fast", "-Wno-psabi"],
    )
    for source in sorted((HERE / "csrc").glob("*.c"))
]

setup(
    name="mpireg",
    version="0.1.0",
    description="Data-parallel training of regression-family models over MPI, from HDF5 shards",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["mpireg", "mpireg.*"]),
    python_requires=">=3.9",
    install_requires=[
        "numpy>=1.22",
        "h5py>=3.6",
        "mpi4py>=3.1",
        "scipy>=1.8",
        "tqdm>=4.60",
        "threadpoolctl>=3.1",  # BLAS threads per rank (cores.py)
        "scikit-learn>=1.6",  # the Python API's estimator base (imported only by mpireg.api)
        "pyarrow>=14",  # CSV and Parquet conversion (imported only by mpireg.convert.arrow)
        'tomli>=1.1; python_version < "3.11"',
    ],
    extras_require={
        # An MPI runtime from PyPI, for machines without a system MPI.
        "mpi": ["mpich"],
        "test": ["pytest>=7", "pytest-timeout>=2", "matplotlib", "pandas", "statsmodels>=0.14",
                 "wheel", "build"],  # (the test that builds the wheel and runs it outside the tree)
        "report": ["matplotlib"],  # mpireg-report's figures
        "gpu": ["cupy"],
        # The peers that benchmarks/compare_peers.py and race.py race; never needed by the tests.
        # (On a CPU-only machine, a CPU build of torch is much smaller: see the README.)
        # scikit-learn-intelex carries daal4py (the 2024 daal4py wheels fail with scikit-learn
        # >= 1.6); its distributed mode runs on the mpich wheel's libmpi.so.12 (the same ABI).
        # Not impi-rt: it installs its own mpiexec and libmpi.so.12 over MPICH's in the same
        # prefix, so every mpireg run after it silently used Intel MPI. heat is not listed: heat 1.8
        # pins torch below the 2.13.0 here, so pip would fall back to heat 1.0; race.py's
        # docstring gives its one-line install (--no-deps, measured to run on torch 2.13.0).
        "bench": ["matplotlib", "scikit-learn", "torch==2.13.0", "pyspark", "pyarrow", "implicit==0.7.3",
                  "vowpalwabbit", "glum", "snapml", "scikit-learn-intelex",
                  "dask-ml", "distributed"],
    },
    ext_modules=extensions,
    cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithJobs},
    entry_points={
        "console_scripts": [
            "mpireg-train=mpireg.train:main",
            "mpireg-data=mpireg.convert.tool:main",
            "mpireg-predict=mpireg.predict:main",
            "mpireg-report=mpireg.report:main",
            "mpireg-sweep=mpireg.sweep:main",
        ]
    },
)
