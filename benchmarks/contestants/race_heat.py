"""heat: least squares by its distributed tall-skinny QR under mpiexec (heat 1.8 has no logistic
or softmax regression; its Lasso is coordinate descent). The (d+1)^2 triangle is solved on each
rank: heat's own solve_triangular failed with 'Message truncated' (measured)."""
import sys
import types

import numpy as np

from common import arguments, load, save

# heat imports torchvision for its image datasets only; PyPI's torchvision does not load beside
# the CPU torch 2.13.0 this machine carries ('operator torchvision::nms does not exist').
vision = sys.modules["torchvision"] = types.ModuleType("torchvision")
for sub in ("transforms", "datasets"):
    setattr(vision, sub, types.ModuleType("torchvision." + sub))
    sys.modules["torchvision." + sub] = getattr(vision, sub)
vision.transforms.Compose = vision.datasets.MNIST = object
import heat as ht  # noqa: E402
from scipy.linalg import solve_triangular  # noqa: E402

x_path, y_path, task, out = arguments()
comm = ht.MPI_WORLD
X, y = load(x_path, y_path, comm.rank, comm.size)
A = np.empty((len(X), X.shape[1] + 1))
A[:, :-1], A[:, -1] = X, 1.0
Q, R = ht.linalg.qr(ht.array(A, is_split=0))
beta = solve_triangular(R.numpy(), (Q.T @ ht.array(y[:, None], is_split=0)).numpy().ravel())
if comm.rank == 0:
    save(out, beta[:-1], beta[-1])
