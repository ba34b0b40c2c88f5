"""dask-ml on a 2-worker LocalCluster (one thread each): LogisticRegression(lbfgs) /
LinearRegression(newton: one exact step for squares). dask-ml fits no multinomial model."""
import numpy as np

from common import arguments, save

if __name__ == "__main__":  # the workers are processes that import this file
    import dask.array as da
    from dask.distributed import Client, LocalCluster
    from dask_ml.linear_model import LinearRegression, LogisticRegression

    x_path, y_path, task, out = arguments()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
        X, y = np.load(x_path, mmap_mode="r"), np.load(y_path, mmap_mode="r")
        half = -(-len(X) // 2)
        Xd = da.from_array(X, chunks=(half, -1)).astype(np.float64).persist()
        yd = da.from_array(y, chunks=(half,)).astype(np.float64).persist()
        if task == "logistic":
            m = LogisticRegression(solver="lbfgs", C=1e30, tol=1e-9, max_iter=10000).fit(Xd, yd)
        else:
            m = LinearRegression(solver="newton", C=1e30, tol=1e-9, max_iter=100).fit(Xd, yd)
        save(out, m.coef_, m.intercept_)
