"""Bounded input through the real stack (gunicorn, real sockets, the SDK where it fits):
bodies over their limit are 413 however they are sent, deep JSON is 400, and decoding
bombs are 422 at submit without the API allocating their declared sizes.

The API's memory is measured by the kernel, not by time: each API worker's peak resident
set (``VmHWM``) is reset through ``/proc/<pid>/clear_refs`` before the bombs are
submitted and read after; it must grow by less than 256 MiB. Times are printed (``-s``)
for the record, never asserted.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from bombs import csv_wide, npz_bomb, safetensors_raw

import landscope
from landscope_service.local import LocalStack

pytestmark = pytest.mark.integration

MIB = 2**20
HEADERS = {"Authorization": "Bearer key-a"}


def _api_workers(stack: LocalStack) -> list[int]:
    assert stack._api is not None
    out = subprocess.run(["pgrep", "-P", str(stack._api.pid)], capture_output=True,
                         text=True, check=False)
    pids = [int(p) for p in out.stdout.split()]
    assert pids, "no gunicorn workers found"
    return pids


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} missing for {pid}")


def _chunks(total: int, size: int = MIB) -> Iterator[bytes]:
    block = b"z" * size
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield block[:n]
        sent += n


def test_chunked_80_mib_upload_is_413_and_nothing_is_stored(stack: LocalStack) -> None:
    limit = 64 * MIB  # LANDSCOPE_MAX_BODY_BYTES default
    try:
        resp = requests.post(stack.url + "/v1/blobs", data=_chunks(80 * MIB),
                             headers={**HEADERS, "Content-Type": "application/octet-stream"},
                             timeout=120)
    except requests.ConnectionError as e:  # the server may close once it has answered
        pytest.fail(f"no 413 came back: {e}")
    assert "Content-Length" not in resp.request.headers  # it really was chunked
    assert resp.status_code == 413, resp.text[:300]
    body = resp.json()
    assert body["code"] == "payload_too_large" and "LANDSCOPE_MAX_BODY_BYTES" in body["detail"]
    truncated = hashlib.sha256(b"z" * limit).hexdigest()
    got = requests.get(f"{stack.url}/v1/blobs/sha256:{truncated}", headers=HEADERS, timeout=10)
    assert got.status_code == 404


def test_chunked_json_over_the_limit_is_413(stack: LocalStack) -> None:
    payload = json.dumps({"kind": "evaluate", "pad": "p" * (9 * MIB)}).encode()
    resp = requests.post(stack.url + "/v1/jobs", data=iter([payload[i:i + MIB] for i in
                                                           range(0, len(payload), MIB)]),
                         headers={**HEADERS, "Content-Type": "application/json"}, timeout=60)
    assert resp.status_code == 413, resp.text[:300]
    assert "LANDSCOPE_MAX_JSON_BYTES" in resp.json()["detail"]


def test_json_nested_100000_deep_is_400(stack: LocalStack) -> None:
    body = b'{"kind": "evaluate", "model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = requests.post(stack.url + "/v1/jobs", data=body,
                         headers={**HEADERS, "Content-Type": "application/json"}, timeout=30)
    assert resp.status_code == 400, resp.text[:300]
    assert resp.json()["code"] == "json_too_deep"


def _job(blob_id: str, fmt: str) -> dict[str, Any]:
    return {"kind": "evaluate", "loss": "mse",
            "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [4],
                                       "output_dim": 1, "activation": "tanh", "bias": True},
                      "init_seed": 0},
            "data": {"blob": blob_id, "format": fmt}}


def test_decoding_bombs_are_422_without_the_api_allocating_them(
        stack: LocalStack, client_a: landscope.Client) -> None:
    bombs = {
        "npz": npz_bomb(),  # 4.2 MB declaring 4 GiB of float64
        "csv": csv_wide(5_000_000),  # 54 MB with 5 x 10^6 columns
        "safetensors": safetensors_raw(b"{}", declared_len=2**40),
    }
    ids = {fmt: client_a.blobs.upload(raw).id for fmt, raw in bombs.items()}
    workers = _api_workers(stack)
    for pid in workers:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # peak RSS := current RSS
    before = {pid: _status(pid, "VmRSS") for pid in workers}
    for fmt, blob_id in ids.items():
        t0 = time.perf_counter()
        with pytest.raises(landscope.UnprocessableEntityError) as e:
            client_a.jobs.submit(_job(blob_id, fmt))
        elapsed = time.perf_counter() - t0
        messages = json.dumps(e.value.errors)
        assert "data" in e.value.errors, messages
        print(f"\n{fmt} bomb ({len(bombs[fmt]) / 1e6:.1f} MB): 422 in {elapsed * 1000:.0f} ms: "
              f"{messages[:160]}")
    growth = {pid: _status(pid, "VmHWM") - before[pid] for pid in workers}
    print(f"API workers' peak RSS growth over the three bombs: "
          f"{ {pid: f'{g / MIB:.1f} MiB' for pid, g in growth.items()} }")
    assert max(growth.values()) < 256 * MIB, growth


def test_data_limit_names_the_setting(client_a: landscope.Client) -> None:
    import numpy as np

    buf = io.BytesIO()
    n = 2**22 + 1  # 4 n = 16,777,220 numbers, 4 above the default limit
    np.savez_compressed(buf, x=np.zeros((n, 3)), y=np.zeros((n, 1)))
    blob = client_a.blobs.upload(buf.getvalue())
    with pytest.raises(landscope.UnprocessableEntityError) as e:
        client_a.jobs.submit(_job(blob.id, "npz"))
    assert "LANDSCOPE_MAX_DATA_VALUES" in json.dumps(e.value.errors)
