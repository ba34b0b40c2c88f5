"""`python -m mpireg`: what the commands are."""
import sys

OVERVIEW = """mpireg: regression-family models trained over MPI, from HDF5 shards.

  mpiexec -n 2 mpireg-train [JOB]      train a job file, or a packaged job by name (default: quickstart)
                                       (also: python -m mpireg.train)
  mpireg-data synth|convert|...        make or convert data into shards   (python -m mpireg.data)
  mpireg-predict MODEL.h5 DATA --out   predictions of a trained model     (python -m mpireg.predict)
  mpireg-report RUN... --out DIR       figures and a summary of runs      (python -m mpireg.report)
  mpireg-sweep SWEEP.toml              a grid of jobs                     (python -m mpireg.sweep)

  Python: import mpireg; mpireg.LogisticRegression().fit(X, y)   (scikit-learn's shape)

Packaged jobs: {jobs}
Each command takes --help. Documentation: README.md and docs/ in the source repository."""


def main() -> int:
    from .jobfiles import packaged_jobs

    print(OVERVIEW.format(jobs=", ".join(packaged_jobs()) or "(none found)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
