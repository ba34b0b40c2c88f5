"""daal4py (Intel oneDAL). Linear: distributed linear_regression_training under mpiexec, each
rank on its own rows (the normal equations, reduced across ranks). Logistic and softmax:
logistic_regression_training with oneDAL's L-BFGS over the full batch, in one process: oneDAL's
CPU logistic regression has no distributed mode."""
import daal4py as d4p
import numpy as np

from common import arguments, load, save

x_path, y_path, task, out = arguments()
if task == "linear":
    d4p.daalinit()
    rank, size = d4p.my_procid(), d4p.num_procs()
    X, y = load(x_path, y_path, rank, size)
    result = d4p.linear_regression_training(distributed=True, interceptFlag=True,
                                            fptype="double").compute(X.astype(np.float64), y[:, None])
    beta = result.model.Beta.ravel()  # intercept first
    if rank == 0:
        save(out, beta[1:], beta[0])
    d4p.daalfini()
else:
    X, y = load(x_path, y_path)
    n, k = len(X), (2 if task == "logistic" else int(y.max()) + 1)
    solver = d4p.optimization_solver_lbfgs(None, nIterations=10000, accuracyThreshold=1e-9,
                                           batchSize=n, correctionPairBatchSize=n, fptype="double")
    result = d4p.logistic_regression_training(nClasses=k, interceptFlag=True, optimizationSolver=solver,
                                              fptype="double").compute(X.astype(np.float64), y[:, None])
    beta = result.model.Beta  # (1 or k) x (1 + d), intercept first
    save(out, beta[:, 1:] if k > 2 else beta[0, 1:], beta[:, 0] if k > 2 else beta[0, 0])
