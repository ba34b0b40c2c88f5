"""The GPU path (device = "gpu"): CuPy models, device packing, staged or CUDA-aware
communication, NCCL. Cases that need a GPU skip cleanly where CuPy or a GPU is missing (CI has
none) and run wherever one is present; the CPU-side behaviour is tested everywhere."""
import json
import sys

import numpy as np
import pytest

from mpireg.comm import packing
from mpireg.device import HostStaging, mpi_is_cuda_aware
from mpireg.models import make_model
from tests.helpers import assert_one_error, run_command, run_ranks


def _gpu():
    try:
        import cupy

        return cupy if cupy.cuda.runtime.getDeviceCount() > 0 else None
    except Exception:  # noqa: BLE001 - no CuPy, no driver, no device: all mean "no GPU"
        return None


cp = _gpu()
needs_gpu = pytest.mark.skipif(cp is None, reason="needs CuPy and a GPU")
DEVICES = ["cpu", pytest.param("gpu", marks=needs_gpu)]


def _job(tmp_path, text=""):
    job = tmp_path / "job.toml"
    job.write_text(text)
    return job


# ---------------------------------------------------------------- everywhere
def test_gpu_without_cupy_or_gpu_is_a_clear_error(datasets, tmp_path):
    if cp is not None:
        pytest.skip("a GPU is present")
    result = run_ranks(2, _job(tmp_path), "--set", f"data.train={datasets['linear']}", "--set", "device=gpu",
                       "--run-dir", tmp_path / "r")
    assert result.returncode == 1
    assert_one_error(result.stderr, "device: 'gpu'")


def test_cpu_jobs_never_import_cupy(datasets, tmp_path):
    """A `cupy` that explodes on import is first on the path: a CPU job must not notice it."""
    trap = tmp_path / "trap" / "cupy"
    trap.mkdir(parents=True)
    (trap / "__init__.py").write_text("raise RuntimeError('a CPU job imported cupy')\n")
    for strategy in ("allreduce", "ring", "ps"):
        result = run_command([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(trap.parent)!r}); "
                              "from mpireg.train import main; sys.exit(main())", str(_job(tmp_path)),
                              "--set", f"data.train={datasets['logistic']}", "--set", "model.kind=logistic",
                              "--set", f"comm.strategy={strategy}", "--set", "comm.compression=fp16",
                              "--set", "data.dtype=float32", "--run-dir", str(tmp_path / strategy)])
        assert result.returncode == 0, result.stderr


def test_nccl_needs_the_gpu(datasets, tmp_path):
    result = run_ranks(1, _job(tmp_path), "--set", f"data.train={datasets['linear']}",
                       "--set", "comm.strategy=nccl", "--run-dir", tmp_path / "r")
    assert result.returncode == 1 and "'nccl' reduces GPU buffers; set device = 'gpu'" in result.stderr


def test_cuda_awareness_query_answers():
    assert mpi_is_cuda_aware() in (True, False)


def test_host_staging_round_trip():
    staging, a = HostStaging(), np.arange(5.0)
    host = staging.to_host(a)
    assert host is not a and np.array_equal(host, a) and staging.to_host(a) is host  # mirror reused
    staging.to_device(host * 2, a)
    assert np.array_equal(a, np.arange(5.0) * 2)


# ---------------------------------------------------------------- on a GPU
@needs_gpu
@pytest.mark.parametrize("kind,k", [("linear", 0), ("logistic", 2), ("softmax", 4)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gpu_gradients_equal_cpu(kind, k, dtype, rng):
    X = rng.standard_normal((300, 7)).astype(dtype)
    y = rng.standard_normal(300).astype(dtype) if kind == "linear" else rng.integers(0, max(k, 2), 300)
    results = []
    for xp in (np, cp):
        model = make_model(kind, 7, k, l2=0.1, xp=xp)
        w = xp.asarray(rng.standard_normal(model.layout.size).astype(dtype)) if xp is np else xp.asarray(results[0][2])
        grad = xp.empty_like(w)
        loss = model.loss_grad_sum(w, xp.asarray(X), model.prepare_targets(xp.asarray(y)), grad)
        results.append((loss, grad.get() if xp is cp else grad, w.get() if xp is cp else w))
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    assert results[1][0] == pytest.approx(results[0][0], rel=rtol)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=rtol, atol=rtol)


@needs_gpu
@pytest.mark.parametrize("compression", ["none", "fp16", "bf16"])
def test_device_packing_equals_the_c_extension(compression, rng):
    values = (rng.standard_normal(10007) * 100).astype(np.float32)
    arrays = [values[:7], values[7:]]
    host = np.empty(values.size, np.float32 if compression == "none" else np.uint16)
    packing.default.pack(arrays, host, 0.25, compression)
    device_out = cp.empty(values.size, dtype=host.dtype)
    packing.for_array(device_out).pack([cp.asarray(a) for a in arrays], device_out, 0.25, compression)
    assert np.array_equal(device_out.get(), host)
    if compression != "none":
        other = rng.permutation(host)
        expected = host.copy()
        packing.default.sum_into(other, expected, compression)
        got = cp.asarray(host)
        packing.for_array(got).sum_into(cp.asarray(other), got, compression)
        assert np.array_equal(got.get(), expected)


@needs_gpu
@pytest.mark.parametrize("strategy", ["allreduce", "ring", "ps", "ps-async", "nccl"])
def test_gpu_training_equals_cpu_training(datasets, tmp_path, strategy):
    from mpireg.model_io import load_model

    params = {}
    for device in ("cpu", "gpu"):
        if device == "cpu" and strategy == "nccl":
            continue
        result = run_ranks(2, _job(tmp_path), "--set", f"data.train={datasets['softmax']}",
                           "--set", "model.kind=softmax", "--set", "optimizer.kind=sgd",
                           "--set", "optimizer.epochs=2", "--set", "optimizer.batch_size=32",
                           "--set", f"comm.strategy={strategy}", "--set", f"device={device}",
                           "--run-dir", tmp_path / device)
        assert result.returncode == 0, result.stderr
        params[device] = load_model(tmp_path / device / "model.h5")[1]
        assert json.loads((tmp_path / device / "summary.json").read_text())["ranks"] == 2
    if "cpu" in params and strategy != "ps-async":  # asynchronous runs differ by arrival order
        np.testing.assert_allclose(params["gpu"], params["cpu"], rtol=1e-7, atol=1e-9)
