"""Two worker "hosts": separate processes on different queues, with separate data folders,
sharing nothing but Redis (LANDSCOPE_STORAGE=redis). A job that fans out subtasks
completes with pieces computed on both."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import landscope
from landscope_service.local import LocalStack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    base = tmp_path_factory.mktemp("hosts")
    stack = LocalStack(api_keys="tenant-a:key-a", workers=0, data_dir=base / "api",
                       env={"LANDSCOPE_STORAGE": "redis", "LANDSCOPE_LEASE_S": "5"})
    try:
        stack.start(timeout=120)
        stack.start_worker(name="host-a", queues=["cpu"],
                           env={"LANDSCOPE_DATA_DIR": str(base / "host-a")})
        stack.start_worker(name="host-b", queues=["gpu", "cpu"],
                           env={"LANDSCOPE_DATA_DIR": str(base / "host-b")})
        stack.wait_ready(120, workers=2)
    except BaseException:
        print(stack.logs())
        stack.stop()
        raise
    yield stack, base
    stack.stop()


def test_fanned_out_job_runs_pieces_on_both_hosts(two_hosts: tuple[LocalStack, Path]) -> None:
    stack, base = two_hosts
    with landscope.Client(stack.url, api_key="key-a") as client:
        # Weights uploaded to the API reach the workers only through the Redis store.
        import io

        import numpy as np
        from safetensors.numpy import save

        rng = np.random.default_rng(0)
        weights = client.blobs.upload(save({
            "0.weight": rng.normal(size=(6, 2)).astype(np.float32),
            "0.bias": np.zeros(6, np.float32),
            "2.weight": rng.normal(size=(1, 6)).astype(np.float32),
            "2.bias": np.zeros(1, np.float32),
        }))
        buf = io.BytesIO()
        np.savez(buf, x=rng.normal(size=(32, 2)), y=rng.normal(size=(32, 1)))
        data = client.blobs.upload(buf.getvalue())
        job = client.jobs.submit({
            "kind": "level_set_connectivity",
            "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [6],
                                       "output_dim": 1, "activation": "tanh"},
                      "weights": weights.id},
            "data": {"blob": data.id, "format": "npz"},
            "loss": "mse",
            "options": {"minima": [weights.id], "num_trained": 5,
                        "train": {"steps": 150, "lr": 0.02},
                        "paths": {"methods": ["neb"],
                                  "neb": {"images": 3, "cycles": 1, "steps": 40}}},
        })
        done = client.jobs.wait(job.id, timeout=600)
        assert done.status == "succeeded", done.error
        assert done.execution is not None
        pieces = done.execution["pieces"]
        host = socket.gethostname()
        assert sorted(pieces) == [f"host-a@{host}", f"host-b@{host}"], pieces
        assert all(n > 0 for n in pieces.values()), pieces
        assert done.result is not None and done.result["num_minima"] == 6
        names = {a.name for a in done.artifacts}
        assert "merge_tree.png" in names
        assert client.jobs.artifact(job.id, "merge_tree.png")[:4] == b"\x89PNG"
    # The workers' own folders stayed empty: blobs and artifacts went through Redis.
    for name in ("host-a", "host-b"):
        folder = base / name
        assert not folder.exists() or not any(p.is_file() for p in folder.rglob("*"))
