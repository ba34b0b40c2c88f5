"""The Python API in one process: fit, predict, score, save, load, and scikit-learn's tools.

    python examples/fit_one_process.py
"""
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mpireg

X, y = load_breast_cancer(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
scaler = StandardScaler().fit(X_train)

model = mpireg.LogisticRegression(C=1.0).fit(scaler.transform(X_train), y_train)  # L-BFGS
print(f"accuracy {model.score(scaler.transform(X_test), y_test):.4f} after {model.n_iter_} iterations")
print("coef_", model.coef_.shape, "intercept_", model.intercept_)

model.save("breast_cancer.h5")                      # the CLI's model file: mpireg.predict reads it
again = mpireg.load("breast_cancer.h5")
assert np.array_equal(again.predict(scaler.transform(X_test)), model.predict(scaler.transform(X_test)))

search = GridSearchCV(make_pipeline(StandardScaler(), mpireg.LogisticRegression()),
                      {"logisticregression__C": [0.01, 0.1, 1.0, 10.0]}, cv=5).fit(X_train, y_train)
print("best", search.best_params_, f"cv accuracy {search.best_score_:.4f}")
