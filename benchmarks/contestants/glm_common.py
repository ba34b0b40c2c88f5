"""What the GLM race's contestants share: `python glm_<name>.py DIR FAMILY OUT.npy`, DIR holding
X.npy (float32), y.npy, w.npy and offset.npy; OUT gets [intercept, coef...] in float64."""
import sys

import numpy as np

POWER = 1.5  # the tweedie problem's variance power


def arguments():
    return sys.argv[1], sys.argv[2], sys.argv[3]


def load(directory):
    return tuple(np.load(f"{directory}/{name}.npy") for name in ("X", "y", "w", "offset"))


def save(out, intercept, coef) -> None:
    np.save(out, np.concatenate([[float(intercept)], np.ravel(coef).astype(np.float64)]))
