"""Known answer: a memory-mapped uint8 (or float16) data set with a declared transform
gives the same loss, gradient and Hessian-vector product as the same data sent inline as
float64, to 1e-12 (float64), batch by batch from disk; several blobs concatenate.

The inline reference holds ``(x - mean) / std`` computed in float64 by numpy; the
streamed problem converts each uint8 batch to float64 on the device and applies the same
transform there. Both run through ``modelspec.build.build_problem`` (the worker's path).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, jvp

from landscope_service.diagnostics.streaming import StreamingProblem
from landscope_service.modelspec.build import build_problem
from landscope_service.modelspec.schemas import DataSchema

TOL = 1e-12
CNN = {"type": "sequential", "input_shape": [3, 6, 6], "layers": [
    {"type": "conv2d", "out_channels": 4, "kernel_size": [3, 3], "padding": [1, 1]},
    {"type": "tanh"}, {"type": "avgpool2d", "kernel_size": [2, 2]}, {"type": "flatten"},
    {"type": "linear", "out_features": 5}]}
MLP = {"type": "mlp", "input_dim": 7, "hidden": [6], "output_dim": 2, "activation": "tanh",
       "bias": True}


def _npz(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)  # stored, not compressed: mappable
    return path


def _safetensors(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    codes = {np.dtype(np.uint8): "U8", np.dtype(np.float16): "F16",
             np.dtype(np.float64): "F64", np.dtype(np.int64): "I64"}
    header: dict[str, Any] = {}
    blobs = []
    offset = 0
    for name, a in (("x", x), ("y", y)):
        raw = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": codes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    return path


def _request(arch: dict[str, Any], data: dict[str, Any], loss: str,
             batch_size: int | None) -> dict[str, Any]:
    req: dict[str, Any] = {"kind": "evaluate", "model": {"architecture": arch, "init_seed": 3},
                           "data": DataSchema().load(data), "loss": loss, "dtype": "float64"}
    if batch_size is not None:
        req["batch_size"] = batch_size
    return req


def _no_bytes(blob_id: str) -> bytes:
    raise AssertionError(f"the streamed path read {blob_id} whole")


def _compare(streamed: Any, inline: Any) -> None:
    p = inline.params
    loss_s, loss_i = streamed.full_loss(), inline.full_loss()
    assert abs(float(loss_s) - float(loss_i)) <= TOL * max(1.0, abs(float(loss_i)))
    g_s = grad(lambda q: streamed.full_loss(q))(p)
    g_i = grad(lambda q: inline.full_loss(q))(p)
    v = {k: torch.randn(t.shape, dtype=t.dtype, generator=torch.Generator().manual_seed(1))
         for k, t in p.items()}
    hv_s = jvp(grad(lambda q: streamed.full_loss(q)), (p,), (v,))[1]
    hv_i = jvp(grad(lambda q: inline.full_loss(q)), (p,), (v,))[1]
    for k in p:
        assert torch.allclose(g_s[k], g_i[k], rtol=TOL, atol=TOL), k
        assert torch.allclose(hv_s[k], hv_i[k], rtol=TOL, atol=TOL), k
    assert not isinstance(inline, StreamingProblem)
    assert isinstance(streamed, StreamingProblem) and streamed.x.device.type == "meta"


@pytest.mark.parametrize("as_bytes", [False, True], ids=["memmap", "redis-bytes"])
def test_uint8_images_with_a_transform_equal_float64_inline(tmp_path: Path,
                                                            as_bytes: bool) -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(23, 3, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 5, size=23).astype(np.int64)
    mean, std = [125.3, 122.9, 113.8], [63.0, 62.1, 66.7]
    path = _npz(tmp_path / "images.npz", x=x, y=y)
    ref = (x.astype(np.float64) - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    blob = "sha256:" + "a" * 64
    streamed = build_problem(
        _request(CNN, {"blob": blob, "format": "npz", "transform": {"mean": mean, "std": std}},
                 "cross_entropy", 5),
        _no_bytes, device=torch.device("cpu"), dtype=torch.float64,
        blob_file=lambda b: path.read_bytes() if as_bytes else path)
    inline = build_problem(
        _request(CNN, {"inline": {"x": ref.tolist(), "y": y.tolist()}}, "cross_entropy", None),
        _no_bytes, device=torch.device("cpu"), dtype=torch.float64)
    assert streamed.num_batches == 5 and streamed.num_samples == 23
    if not as_bytes:
        from landscope_service.modelspec.stream import mapping_of

        assert mapping_of(streamed.source.parts[0][0]) is not None  # type: ignore[union-attr]
    _compare(streamed, inline)


def test_float16_flat_inputs_in_two_safetensors_blobs_concatenate(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 7)).astype(np.float16)
    y = rng.normal(size=(30, 2)).astype(np.float64)
    a = _safetensors(tmp_path / "a.safetensors", x[:13], y[:13])
    b = _safetensors(tmp_path / "b.safetensors", x[13:], y[13:])
    files = {"sha256:" + "a" * 64: a, "sha256:" + "b" * 64: b}
    mean, std = [0.5], [2.0]
    ref = (x.astype(np.float64) - 0.5) / 2.0
    streamed = build_problem(
        _request(MLP, {"blobs": list(files), "format": "safetensors",
                       "transform": {"mean": mean, "std": std}}, "mse", 4),
        _no_bytes, device=torch.device("cpu"), dtype=torch.float64, blob_file=files.__getitem__)
    inline = build_problem(
        _request(MLP, {"inline": {"x": ref.tolist(), "y": y.tolist()}}, "mse", 7),
        _no_bytes, device=torch.device("cpu"), dtype=torch.float64)
    assert streamed.num_samples == 30 and streamed.num_batches == 8  # a batch spans both
    _compare(streamed, inline)


def test_batches_read_only_their_samples(tmp_path: Path) -> None:
    """Memory is bounded by the batch: each read asks the source for one batch."""
    x = np.arange(40 * 7, dtype=np.uint8).reshape(40, 7)
    y = np.zeros((40, 2))
    path = _npz(tmp_path / "d.npz", x=x, y=y)
    problem = build_problem(
        _request(MLP, {"blobs": ["sha256:" + "c" * 64], "format": "npz"}, "mse", 16),
        _no_bytes, device=torch.device("cpu"), dtype=torch.float64, blob_file=lambda b: path)
    sizes = [int(xb.shape[0]) for xb, _, _ in problem.batches()]
    assert sizes == [16, 16, 8]
    first = next(problem.batches())[0]
    assert torch.equal(first, torch.from_numpy(x[:16].astype(np.float64)))
    with pytest.raises(RuntimeError):
        functional_call(problem.model, problem.params, (problem.x,)).sum().item()


def test_bad_streamed_files_name_the_field(tmp_path: Path) -> None:
    from marshmallow import ValidationError

    from landscope_service.modelspec.stream import inspect_streamed

    x = np.zeros((4, 7), dtype=np.uint8)
    compressed = tmp_path / "c.npz"
    np.savez_compressed(compressed, x=x, y=np.zeros((4, 2)))
    wrong = _npz(tmp_path / "w.npz", x=np.zeros((4, 6), dtype=np.uint8), y=np.zeros((4, 2)))
    good = _npz(tmp_path / "g.npz", x=x, y=np.zeros((4, 2)))
    files = {"c": compressed, "w": wrong, "g": good}

    def check(data: dict[str, Any]) -> Any:
        with pytest.raises(ValidationError) as e:
            inspect_streamed(data, lambda b: files[b], loss="mse", input_shape=(7,),
                             output_dim=2)
        return e.value.messages

    assert "savez" in str(check({"blob": "c", "format": "npz", "transform": {
        "mean": [0], "std": [1]}})["data"]["blob"])
    assert "shape" in str(check({"blobs": ["g", "w"], "format": "npz"})["data"]["blobs"][1])
    assert "transform" in check({"blob": "g", "format": "npz",
                                 "transform": {"mean": [0, 1], "std": [1]}})["data"]
    assert inspect_streamed({"blobs": ["g", "g"], "format": "npz"}, lambda b: files[b],
                            loss="mse", input_shape=(7,), output_dim=2) == 8
    schema = DataSchema()
    for bad in ({"blob": "sha256:" + "a" * 64, "format": "csv",
                 "transform": {"mean": [0], "std": [1]}},
                {"inline": {"x": [[0]], "y": [[0]]}, "transform": {"mean": [0], "std": [1]}},
                {"blobs": ["sha256:" + "a" * 64], "format": "npz",
                 "transform": {"mean": [0], "std": [0]}}):
        with pytest.raises(ValidationError):
            schema.load(bad)

