"""The trained model as one HDF5 file: parameters by name, the config, the data schema, metrics."""
from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np

from .atomic import atomic_file
from .cores import available_memory
from .data.format import int_attr
from .errors import DataError, MpiregError
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
    """(model, flat params, attributes) from a model file written by `save_model`. A file that
    is not one, or one damaged or altered, is a DataError naming it and what is wrong."""
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot open model file ({str(exc).splitlines()[0]})") from None
    with f:
        if "mpireg_model" not in f.attrs:
            raise DataError(f"{path}: not an mpireg model file (no attribute mpireg_model)")
        try:
            return _read_model(f, path, xp)
        except DataError:
            raise  # (each names the file and what is wrong)
        except (KeyError, ValueError, TypeError, MpiregError) as exc:  # an attribute make_model refuses
            raise DataError(f"{path}: a damaged model file ({exc}); retrain, or restore the file from its "
                            f"source") from None


def _read_model(f, path, xp):
    a = f.attrs
    version = int_attr(path, a, "mpireg_model", 1)
    if version > MODEL_FORMAT:
        raise DataError(f"{path}: model format {version}; this mpireg reads up to {MODEL_FORMAT} (upgrade mpireg)")
    model = make_model(str(a["kind"]), int_attr(path, a, "n_features", 1), int_attr(path, a, "n_classes", 0),
                       bool(a["fit_intercept"]), float(a["l2"]), float(a["l1"]), xp=xp,
                       **_json_attr(path, a, "options", "{}"))
    stored = _stored_params(f, path, model)
    if "sha256" in a and params_digest(stored) != str(a["sha256"]):
        raise DataError(f"{path}: the parameters do not match the checksum written with them (the file was "
                        f"altered or damaged); retrain, or restore the file from its source")
    params = model.init_params(next(iter(stored.values())).dtype)
    views = model.layout.views(params)
    for name in views:
        views[name][...] = xp.asarray(stored[name])
    meta = {k: _json_attr(path, a, k, "{}") for k in ("config", "schema", "metrics")}
    meta["estimator"] = str(a.get("estimator", ""))
    if "classes" in f:
        data = f["classes"]
        meta["classes"] = data.asstr()[()].astype(str) if h5py.check_string_dtype(data.dtype) else data[()]
    return model, params, meta


def _stored_params(f, path, model) -> dict:
    """Every parameter array the model's layout names, its shape and dtype checked before it is
    read (a declared shape of 2^40 must not be allocated), its values finite."""
    if not isinstance(f.get("params"), h5py.Group):
        raise DataError(f"{path}: no group 'params' (the model's parameters)")
    need = model.layout.size * 8
    have = available_memory()
    if have is not None and need > have:
        raise DataError(f"{path}: a {model.kind} model of {model.layout.size:,} parameters does not fit "
                        f"this machine's {have / 2**30:.1f} GiB (attribute n_features "
                        f"{model.n_features}: damaged?)")
    stored = {}
    for spec in model.layout.specs:
        data = f["params"].get(spec.name)
        if not isinstance(data, h5py.Dataset):
            raise DataError(f"{path}: missing parameter params/{spec.name}")
        if tuple(data.shape) != tuple(spec.shape) or data.dtype not in (np.float32, np.float64):
            raise DataError(f"{path}: params/{spec.name} is {data.dtype} of shape {data.shape}; the model "
                            f"({model.kind}, {model.n_features} features) needs float of shape {tuple(spec.shape)}")
        stored[spec.name] = data[()]
        if not np.all(np.isfinite(stored[spec.name])):
            raise DataError(f"{path}: params/{spec.name} holds NaN or Inf; retrain (the fit diverged?)")
    return stored


def _json_attr(path, attrs, name: str, default: str):
    try:
        return json.loads(attrs.get(name, default))
    except (json.JSONDecodeError, TypeError) as exc:
        raise DataError(f"{path}: attribute {name} is not valid JSON ({exc})") from None
