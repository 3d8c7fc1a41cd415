"""Data at scale on the local stack (issue 17).

1. Upload throughput of a large file through the SDK's chunked upload (16 MiB parts), and
   the API's resident memory during it: the peak of the sum over the gunicorn master and
   workers, above their resident memory before the upload. Target: < 256 MiB above.
2. Worker memory for ``evaluate`` on a streamed data set of the same size (uint8 images
   3x32x32 in an uncompressed npz, a transform, batch_size 1000, float32): the peak
   resident memory of the pool process that runs the job, above its resident memory
   before the job (torch already imported). Target: below 4 batches (as float32) plus the
   model.

3. The speed-up of a ``hessian_spectrum`` job (top-5 by Lanczos, no trace or density)
   on a small CNN over a streamed uint8 data set with ``parallel: {"shards": 2}`` on a
   stack of 2 workers, against the same job unsharded on 1 worker. Target (issue 17):
   >= 1.7x at 20,000 samples.

Both memories are sampled every 20 ms with psutil (RSS), so a peak shorter than that can
be missed.

    .venv/bin/python benchmarks/data_scale.py [--gb 1.0] [--hessian-samples 20000]
        [--only upload,evaluate,speedup]

Results are written to benchmarks/results/data_scale.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import psutil

import landscope
from landscope.spec import blob_data
from landscope_service.local import LocalStack

MiB = 1024 * 1024
SAMPLE = (3, 32, 32)
BATCH = 1000
CNN = {"type": "sequential", "input_shape": list(SAMPLE), "layers": [
    {"type": "conv2d", "out_channels": 4, "kernel_size": [3, 3], "stride": [2, 2],
     "padding": [1, 1]},
    {"type": "relu"}, {"type": "flatten"}, {"type": "linear", "out_features": 10}]}


class PeakRss:
    """Samples the summed RSS of some processes every 20 ms in a thread."""

    def __init__(self, pids: Callable[[], list[int]]) -> None:
        self._pids = pids
        self.baseline = self._now()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _now(self) -> int:
        total = 0
        for pid in self._pids():
            try:
                total += psutil.Process(pid).memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._now())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def above_mib(self) -> float:
        return (self.peak - self.baseline) / MiB


def write_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        done = 0
        while done < size:
            chunk = os.urandom(min(4 * MiB, size - done))
            digest.update(chunk)
            fh.write(chunk)
            done += len(chunk)
    return digest.hexdigest()


def write_npz(path: Path, n: int) -> None:
    """An uncompressed npz of ``n`` uint8 images and int64 labels, written in slices."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_2_0(
                fh, {"descr": "|u1", "fortran_order": False, "shape": (n, *SAMPLE)})
            for start in range(0, n, 10_000):
                rows = min(10_000, n - start)
                fh.write(rng.integers(0, 256, size=(rows, *SAMPLE), dtype=np.uint8).tobytes())
        with zf.open("y.npy", "w", force_zip64=True) as fh:
            np.lib.format.write_array_header_2_0(
                fh, {"descr": "<i8", "fortran_order": False, "shape": (n,)})
            fh.write(rng.integers(0, 10, size=n).astype("<i8").tobytes())


def api_pids(stack: LocalStack) -> list[int]:
    api = stack._api  # the benchmark reads the stack's own process
    if api is None:
        return []
    master = psutil.Process(api.pid)
    return [master.pid, *(c.pid for c in master.children(recursive=True))]


def upload(stack: LocalStack, client: landscope.Client, tmp: Path, size: int) -> dict[str, Any]:
    path = tmp / "upload.bin"
    sha = write_file(path, size)
    with PeakRss(lambda: api_pids(stack)) as api:
        t0 = time.perf_counter()
        blob = client.blobs.upload(path, progress=False)
        seconds = time.perf_counter() - t0
    if blob.id != f"sha256:{sha}":
        raise RuntimeError(f"blob id {blob.id} is not the file's sha256:{sha}")
    client.blobs.delete(blob)
    path.unlink()
    return {"seconds": seconds, "mib_s": size / MiB / seconds, "api_above_mib": api.above_mib,
            "api_baseline_mib": api.baseline / MiB}


def evaluate(stack: LocalStack, client: landscope.Client, tmp: Path, size: int) -> dict[str, Any]:
    n = size // int(np.prod(SAMPLE))
    path = tmp / "images.npz"
    write_npz(path, n)
    blob = client.blobs.upload(path)
    path.unlink()
    worker = stack.worker_procs[0]
    children = worker.child_pids()

    def request(blob: Any) -> dict[str, Any]:
        return {"kind": "evaluate", "model": {"architecture": CNN, "init_seed": 0},
                "data": blob_data(blob, "npz", transform={"mean": [125.0, 123.0, 114.0],
                                                          "std": [63.0, 62.0, 66.0]}),
                "loss": "cross_entropy", "dtype": "float32", "batch_size": BATCH}

    # Warm-up: the same job on 2 batches, so that the baseline includes what any job
    # loads once (libraries, kernels, allocator pools) and the peak shows what the data
    # set's size adds.
    write_npz(tmp / "small.npz", 2 * BATCH)
    small = client.blobs.upload(tmp / "small.npz")
    warm = client.jobs.wait(client.jobs.submit(request(small)).id, timeout=600)
    if warm.status != "succeeded":
        raise RuntimeError(f"warm-up evaluate failed: {warm.error}")
    with PeakRss(lambda: children) as mem:
        t0 = time.perf_counter()
        job = client.jobs.submit(request(blob))
        done = client.jobs.wait(job.id, timeout=3600)
        seconds = time.perf_counter() - t0
    if done.status != "succeeded":
        raise RuntimeError(f"evaluate failed: {done.error}")
    client.blobs.delete(blob)
    batch_mib = BATCH * int(np.prod(SAMPLE)) * 4 / MiB
    return {"samples": n, "seconds": seconds, "worker_above_mib": mem.above_mib,
            "worker_baseline_mib": mem.baseline / MiB, "batch_mib": batch_mib,
            "loss": (done.result or {}).get("loss")}


HESSIAN_CNN = {"type": "sequential", "input_shape": [3, 16, 16], "layers": [
    {"type": "conv2d", "out_channels": 8, "kernel_size": [3, 3], "padding": [1, 1]},
    {"type": "relu"}, {"type": "maxpool2d", "kernel_size": [2, 2]},
    {"type": "flatten"}, {"type": "linear", "out_features": 10}]}


def speedup(tmp: Path, samples: int) -> dict[str, Any]:
    rng = np.random.default_rng(1)
    path = tmp / "hessian.npz"
    np.savez(path, x=rng.integers(0, 256, size=(samples, 3, 16, 16), dtype=np.uint8),
             y=rng.integers(0, 10, size=samples).astype(np.int64))
    seconds: dict[int, float] = {}
    tops: dict[int, list[float]] = {}
    where: list[str] = []
    for workers in (1, 2):
        stack = LocalStack(api_keys="bench:key-bench", workers=workers, concurrency=1,
                           data_dir=tmp / f"store{workers}", env={"LANDSCOPE_FANOUT": "1"})
        stack.start(timeout=180)
        try:
            with landscope.Client(stack.url, api_key="key-bench", timeout=600) as client:
                blob = client.blobs.upload(path)
                options = {"mode": "iterative", "top_k": 5, "bottom_k": 0, "trace": False,
                           "density": False, "hvp": "forward_over_reverse",
                           "parallel": {"shards": workers}}
                request = {"kind": "hessian_spectrum",
                           "model": {"architecture": HESSIAN_CNN, "init_seed": 0},
                           "data": blob_data(blob, "npz", transform={"mean": [127.5],
                                                                     "std": [64.0]}),
                           "loss": "cross_entropy", "dtype": "float32", "batch_size": 1000,
                           "options": options}
                t0 = time.perf_counter()
                done = client.jobs.wait(client.jobs.submit(request).id, timeout=3600)
                seconds[workers] = time.perf_counter() - t0
                if done.status != "succeeded" or done.result is None:
                    raise RuntimeError(f"hessian_spectrum failed: {done.error}")
                tops[workers] = list(done.result["top"]["eigenvalues"])
                if workers == 2:
                    where = [s["ran_on"] for s in done.result["parallel"]["shards"]]
        finally:
            stack.stop()
    return {"samples": samples, "t1": seconds[1], "t2": seconds[2],
            "speedup": seconds[1] / seconds[2], "top1": tops[1], "top2": tops[2],
            "where": where}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="data size in GB (1e9 bytes)")
    parser.add_argument("--hessian-samples", type=int, default=20_000)
    parser.add_argument("--only", default="upload,evaluate,speedup")
    args = parser.parse_args()
    size = int(args.gb * 1e9)
    parts = set(args.only.split(","))
    up: dict[str, Any] | None = None
    ev: dict[str, Any] | None = None
    sp: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="data-scale-") as tmp_name:
        tmp = Path(tmp_name)
        stack = LocalStack(api_keys="bench:key-bench", workers=1, concurrency=1,
                           data_dir=tmp / "store",
                           env={"LANDSCOPE_TENANT_BLOB_BYTES": str(4 * size + 64 * MiB)})
        if parts & {"upload", "evaluate"}:
            stack.start(timeout=180)
            try:
                with landscope.Client(stack.url, api_key="key-bench", timeout=600) as client:
                    up = upload(stack, client, tmp, size) if "upload" in parts else None
                    ev = evaluate(stack, client, tmp, size) if "evaluate" in parts else None
            finally:
                stack.stop()
        if "speedup" in parts:
            sp = speedup(tmp, args.hessian_samples)
    lines = [
        "# Data at scale (benchmarks/data_scale.py)",
        "",
        f"{platform.platform()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
    ]
    if up is not None:
        lines += [
            f"| chunked upload of {size / 1e9:.2f} GB (SDK, 16 MiB parts, hashing included) | "
            f"{up['seconds']:.1f} s, {up['mib_s']:.0f} MiB/s | - |",
            f"| API resident memory above baseline during the upload | "
            f"{up['api_above_mib']:.0f} MiB (baseline {up['api_baseline_mib']:.0f} MiB, "
            f"master + workers) | < 256 MiB |"]
    if ev is not None:
        lines += [
            f"| evaluate, streamed uint8 npz of {size / 1e9:.2f} GB, {ev['samples']} samples, "
            f"batch 1000 | {ev['seconds']:.1f} s (loss {ev['loss']:.4f}) | - |",
            f"| worker resident memory above baseline during evaluate | "
            f"{ev['worker_above_mib']:.0f} MiB (baseline {ev['worker_baseline_mib']:.0f} MiB "
            f"after a warm-up job of 2 batches; one float32 batch is {ev['batch_mib']:.1f} "
            f"MiB) | < 4 batches + model ({4 * ev['batch_mib']:.0f} MiB + < 1 MiB) |"]
    if sp is not None:
        lines += [
            f"| hessian_spectrum top-5, {sp['samples']} samples (3x16x16 uint8, CNN), 1 worker "
            f"unsharded vs 2 workers with 2 shards | {sp['t1']:.1f} s vs {sp['t2']:.1f} s: "
            f"{sp['speedup']:.2f}x (top eigenvalues {sp['top1'][0]:.6g} vs "
            f"{sp['top2'][0]:.6g}; shards ran on {', '.join(sp['where'])}) | >= 1.7x |"]
    text = "\n".join(lines) + "\n"
    out = Path(__file__).parent / "results" / "data_scale.md"
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
