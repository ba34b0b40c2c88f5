"""scikit-learn: LogisticRegression(lbfgs, tol 1e-9; multinomial for softmax) / LinearRegression."""
from common import arguments, load, save

x_path, y_path, task, out = arguments()
X, y = load(x_path, y_path)
if task == "linear":
    from sklearn.linear_model import LinearRegression

    m = LinearRegression().fit(X, y)
else:
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1e30, tol=1e-9, max_iter=10000).fit(X, y)
save(out, m.coef_, m.intercept_)
