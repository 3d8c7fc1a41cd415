"""A 200 MB file through the real stack (gunicorn API, private Redis, local store) in
parts, one of them cut off mid-body over a real socket and sent again by the SDK, which
resumes the upload: the blob's id is the SHA-256 of the bytes.

The only large-data test of the suite (the issue's known answer); the file is written to
a temporary folder a MiB at a time, never held whole.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

import landscope
from landscope_service.local import LocalStack

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SIZE = 200 * 1000 * 1000 + 123  # 200 MB and a short last part
PART = 16 * MiB


def _write(path: Path) -> str:
    """Stream pseudo-random bytes to ``path``, a MiB at a time; returns their SHA-256."""
    digest = hashlib.sha256()
    written = 0
    with path.open("wb") as fh:
        while written < SIZE:
            chunk = hashlib.shake_256(f"chunk {written}".encode()).digest(min(MiB, SIZE - written))
            digest.update(chunk)
            fh.write(chunk)
            written += len(chunk)
    return digest.hexdigest()


def _part(path: Path, n: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(n * PART)
        return fh.read(min(PART, SIZE - n * PART))


def _cut_off_part(url: str, upload_id: str, n: int, body: bytes) -> bytes:
    """PUT part ``n`` announcing its full length, send half, and stop sending (half-close):
    a dropped connection as the server sees it. Returns what the server answered."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        head = (f"PUT /v1/uploads/{upload_id}/parts/{n} HTTP/1.1\r\n"
                f"Host: {parts.netloc}\r\nAuthorization: Bearer key-a\r\n"
                f"Content-Type: application/octet-stream\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        sock.sendall(head.encode() + body[: len(body) // 2])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_200_mb_upload_in_parts_with_one_cut_off_and_resent_is_its_sha256(
        stack: LocalStack, client_a: landscope.Client, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    sha = _write(path)
    auth = {"Authorization": "Bearer key-a"}
    created = requests.post(f"{stack.url}/v1/uploads", headers=auth, timeout=60,
                            json={"size": SIZE, "part_size": PART, "sha256": sha})
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["parts"] == 12 and upload["missing"] == list(range(12))
    for n in (0, 1):
        put = requests.put(f"{stack.url}/v1/uploads/{upload['id']}/parts/{n}",
                           data=_part(path, n), timeout=120,
                           headers={**auth, "Content-Type": "application/octet-stream"})
        assert put.status_code == 200, put.text
        assert put.json()["sha256"] == hashlib.sha256(_part(path, n)).hexdigest()

    answer = _cut_off_part(stack.url, upload["id"], 2, _part(path, 2))
    assert not answer.startswith(b"HTTP/1.1 2"), answer[:200]
    state = requests.get(f"{stack.url}/v1/uploads/{upload['id']}", headers=auth,
                         timeout=60).json()
    assert state["received"] == [0, 1] and 2 in state["missing"]

    blob = client_a.blobs.upload(path, part_size=PART)  # resumes: parts 2..11, complete
    assert blob.id == f"sha256:{sha}" and blob.size == SIZE
    assert client_a.blobs.get(blob.id).size == SIZE
    gone = requests.get(f"{stack.url}/v1/uploads/{upload['id']}", headers=auth, timeout=60)
    assert gone.status_code == 404
    client_a.blobs.delete(blob.id)


CNN = {"type": "sequential", "input_shape": [3, 6, 6], "layers": [
    {"type": "conv2d", "out_channels": 3, "kernel_size": [3, 3], "padding": [1, 1]},
    {"type": "tanh"}, {"type": "avgpool2d", "kernel_size": [2, 2]}, {"type": "flatten"},
    {"type": "linear", "out_features": 4}]}


def test_streamed_uint8_images_with_a_transform_through_the_stack(
        client_a: landscope.Client) -> None:
    """evaluate and hessian_spectrum on a memory-mapped uint8 npz with a transform, batch
    by batch in the worker, equal the same jobs on the float64 values sent inline."""
    import io

    import numpy as np

    from landscope.spec import blob_data

    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(40, 3, 6, 6), dtype=np.uint8)
    y = rng.integers(0, 4, size=40).astype(np.int64)
    mean, std = [120.0, 115.5, 101.0], [60.0, 58.5, 63.0]
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    blob = client_a.blobs.upload(buf.getvalue())
    ref = (x.astype(np.float64) - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    streamed = blob_data([blob, blob], "npz", transform={"mean": mean, "std": std})
    inline = {"inline": {"x": np.concatenate([ref, ref]).tolist(),
                         "y": np.concatenate([y, y]).tolist()}}
    base = {"model": {"architecture": CNN, "init_seed": 1}, "loss": "cross_entropy",
            "dtype": "float64"}
    hessian = {"kind": "hessian_spectrum",
               "options": {"mode": "iterative", "top_k": 2, "bottom_k": 0, "tol": 1e-10,
                           "density_probes": 2, "density_steps": 10}}
    jobs = {
        ("evaluate", "streamed"): {**base, "kind": "evaluate", "data": streamed,
                                   "batch_size": 16},
        ("evaluate", "inline"): {**base, "kind": "evaluate", "data": inline},
        ("hessian", "streamed"): {**base, **hessian, "data": streamed, "batch_size": 32},
        ("hessian", "inline"): {**base, **hessian, "data": inline},
    }
    done = {k: client_a.jobs.wait(client_a.jobs.submit(r).id, timeout=300)
            for k, r in jobs.items()}
    for k, job in done.items():
        assert job.status == "succeeded", (k, job.error)
    ev_s, ev_i = done[("evaluate", "streamed")].result, done[("evaluate", "inline")].result
    assert ev_s is not None and ev_i is not None
    assert ev_s["loss"] == pytest.approx(ev_i["loss"], rel=1e-12)
    assert ev_s["grad_norm"] == pytest.approx(ev_i["grad_norm"], rel=1e-12)
    h_s, h_i = done[("hessian", "streamed")].result, done[("hessian", "inline")].result
    assert h_s is not None and h_i is not None
    assert h_s["top"]["eigenvalues"] == pytest.approx(h_i["top"]["eigenvalues"], rel=1e-8)

    bad = {**base, "kind": "level_set_connectivity", "data": streamed}
    with pytest.raises(landscope.UnprocessableEntityError) as e:
        client_a.jobs.submit(bad)
    assert "evaluate" in str(e.value) + str(getattr(e.value, "errors", ""))


def test_sharded_products_through_the_fan_out_equal_unsharded(
        client_a: landscope.Client) -> None:
    """evaluate and hessian_spectrum with parallel shards run as fan-out pieces (packed,
    sent through Redis, summed on the parent) and equal the unsharded jobs."""
    import numpy as np

    rng = np.random.default_rng(11)
    data = {"inline": {"x": rng.normal(size=(60, 3)).tolist(),
                       "y": rng.normal(size=(60, 1)).tolist()}}
    base = {"model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [5],
                                       "output_dim": 1, "activation": "tanh", "bias": True},
                      "init_seed": 2},
            "data": data, "loss": "mse", "dtype": "float64", "batch_size": 8}
    hess = {"mode": "iterative", "top_k": 3, "bottom_k": 0, "tol": 1e-10,
            "hvp": "forward_over_reverse", "density_probes": 2, "density_steps": 10}
    jobs = {
        "ev1": {**base, "kind": "evaluate"},
        "ev3": {**base, "kind": "evaluate", "options": {"parallel": {"shards": 3}}},
        "h1": {**base, "kind": "hessian_spectrum", "options": hess},
        "h2": {**base, "kind": "hessian_spectrum",
               "options": {**hess, "parallel": {"shards": 2}}},
    }
    done = {k: client_a.jobs.wait(client_a.jobs.submit(r).id, timeout=300)
            for k, r in jobs.items()}
    for k, job in done.items():
        assert job.status == "succeeded", (k, job.error)
    ev1, ev3 = done["ev1"].result, done["ev3"].result
    h1, h2 = done["h1"].result, done["h2"].result
    assert ev1 and ev3 and h1 and h2
    assert ev3["loss"] == pytest.approx(ev1["loss"], rel=1e-10)
    assert ev3["grad_norm"] == pytest.approx(ev1["grad_norm"], rel=1e-10)
    assert len(ev3["parallel"]["shards"]) == 3
    assert all(s["ran_on"] for s in ev3["parallel"]["shards"])
    assert h2["top"]["eigenvalues"] == pytest.approx(h1["top"]["eigenvalues"], rel=1e-10)
    assert [s["samples"] for s in h2["parallel"]["shards"]] == [[0, 32], [32, 60]]
