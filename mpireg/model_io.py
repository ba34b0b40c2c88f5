"""The trained model as one HDF5 file: parameters by name, the config, the data schema, metrics."""
from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np

from .atomic import atomic_file
from .errors import DataError
from .models import make_model

MODEL_FORMAT = 1


def save_model(path, model, params, config: dict, schema: dict, metrics: dict,
               classes=None, estimator: str = "") -> None:
    """Atomically (a whole file or none). `classes`: the labels the codes 0..K-1 stand for, and
    `estimator`: the Python API class that fitted it, where the API wrote the file."""
    host = params.get() if hasattr(params, "get") else np.asarray(params)
    with atomic_file(path, what="model", hint="free space there or choose another run directory") as tmp:
        _write_model(tmp, model, host, config, schema, metrics, classes, estimator)


def _write_model(tmp, model, host, config, schema, metrics, classes, estimator) -> None:
    with h5py.File(tmp, "w") as f:
        group = f.create_group("params")
        views = model.layout.views(host)
        for name, view in views.items():
            group.create_dataset(name, data=view)
        f.attrs["sha256"] = params_digest(views)
        f.attrs.update(mpireg_model=MODEL_FORMAT, kind=model.kind, n_features=model.n_features,
                       n_classes=model.n_classes, fit_intercept=model.fit_intercept,
                       l2=model.l2, l1=model.l1, options=json.dumps(model.options()), config=json.dumps(config),
                       schema=json.dumps(schema), metrics=json.dumps(metrics), estimator=estimator)
        if classes is not None:
            classes = np.asarray(classes)
            if classes.dtype.kind in "OU":  # text labels: UTF-8 strings
                f.create_dataset("classes", data=classes.astype(str).astype(object), dtype=h5py.string_dtype())
            else:
                f.create_dataset("classes", data=classes)


def params_digest(views: dict) -> str:
    """SHA-256 over the named parameter arrays, their names, dtypes and shapes."""
    h = hashlib.sha256()
    for name in sorted(views):
        a = np.ascontiguousarray(views[name])
        h.update(f"{name}:{a.dtype}:{a.shape}".encode())
        h.update(a.view(np.uint8).tobytes())
    return h.hexdigest()


def load_model(path, xp=np):
    """(model, flat params, attributes) from a model file written by `save_model`."""
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot open model file ({str(exc).splitlines()[0]})") from None
    with f:
        if "mpireg_model" not in f.attrs:
            raise DataError(f"{path}: not an mpireg model file (no attribute mpireg_model)")
        a = f.attrs
        model = make_model(str(a["kind"]), int(a["n_features"]), int(a["n_classes"]),
                           bool(a["fit_intercept"]), float(a["l2"]), float(a["l1"]), xp=xp,
                           **json.loads(a.get("options", "{}")))
        dtype = f["params"][model.layout.specs[0].name].dtype
        params = model.init_params(dtype)
        views = model.layout.views(params)
        stored = {name: f["params"][name][()] for name in views}
        if "sha256" in a and params_digest(stored) != str(a["sha256"]):
            raise DataError(f"{path}: the parameters do not match the checksum written with them (the file was "
                            f"altered or damaged); retrain, or restore the file from its source")
        for name in views:
            views[name][...] = xp.asarray(stored[name])
        meta = {k: json.loads(a[k]) for k in ("config", "schema", "metrics")}
        meta["estimator"] = str(a.get("estimator", ""))
        if "classes" in f:
            data = f["classes"]
            meta["classes"] = data.asstr()[()].astype(str) if h5py.check_string_dtype(data.dtype) else data[()]
    return model, params, meta
