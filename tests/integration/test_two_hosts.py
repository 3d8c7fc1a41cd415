"""Two worker "hosts": separate processes on different queues, with separate data folders,
sharing nothing but Redis (LANDSCOPE_STORAGE=redis). A job that fans out subtasks
completes with pieces computed on both; a cancelled job whose pieces ignore the cancel
has its helper process on the other host ended too, and both hosts take the next job."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import landscope
from landscope_service.local import LocalStack

from support import block_request, wait_file

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def two_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, Path]]:
    base = tmp_path_factory.mktemp("hosts")
    stack = LocalStack(api_keys="tenant-a:key-a", workers=0, data_dir=base / "api",
                       env={"LANDSCOPE_STORAGE": "redis", "LANDSCOPE_LEASE_S": "5",
                            "LANDSCOPE_TEST_KINDS": "1"})
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


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_cancel_ends_a_helper_whose_piece_ignores_it(two_hosts: tuple[LocalStack, Path],
                                                      tmp_path: Path) -> None:
    """Two pieces that never check for cancellation: one in the job's own process, one in
    a helper task on the other host. After the cancel both processes are ended (the
    parent's by its watchdog, the helper's by HelperStop), the job is cancelled, and
    both hosts run the next job."""
    stack, _ = two_hosts
    gate, started = tmp_path / "gate", tmp_path / "started"
    gate.touch()  # the job passes its own gate; its pieces wait at gate.pieces
    with landscope.Client(stack.url, api_key="key-a") as client:
        job = client.jobs.submit(block_request(str(gate), started=str(started), pieces=2,
                                               ignore_cancel=True, timeout_s=600))
        pids = {int(wait_file(f"{started}.piece{i}")) for i in range(2)}
        assert len(pids) == 2  # two processes, one per host
        client.jobs.cancel(job.id)
        deadline = time.monotonic() + 60  # turns a hang into a failure; grace is 2 s
        while any(_alive(p) for p in pids):
            assert time.monotonic() < deadline, [p for p in pids if _alive(p)]
            time.sleep(0.05)
        assert client.jobs.wait(job.id, timeout=60).status == "cancelled"
        # both hosts go on: pieces of a released job run and finish
        done_gate = tmp_path / "gate2"
        done_gate.touch()
        (tmp_path / "gate2.pieces").touch()
        nxt = client.jobs.wait(client.jobs.submit(block_request(str(done_gate), pieces=4)).id,
                               timeout=300)
        assert nxt.status == "succeeded", nxt.error
        assert nxt.result is not None and nxt.result["pieces"] == 4
