"""scikit-learn-intelex (Intel oneDAL behind scikit-learn's API), one process:
LogisticRegression(lbfgs, tol 1e-9) / LinearRegression."""
from common import arguments, load, save

x_path, y_path, task, out = arguments()
X, y = load(x_path, y_path)
if task == "linear":
    from sklearnex.linear_model import LinearRegression

    m = LinearRegression().fit(X, y)
else:
    from sklearnex.linear_model import LogisticRegression

    m = LogisticRegression(C=1e30, tol=1e-9, max_iter=10000).fit(X, y)
save(out, m.coef_, m.intercept_)
