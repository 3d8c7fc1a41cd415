"""The SDK's ``blobs.upload`` in parts, against the real app over real HTTP (live_api).

The app's body limit is 2 MiB here, so files of a few MiB go in 1 MiB parts. A dropped
connection is a ``requests.ConnectionError`` raised by the session for chosen attempts
(before anything is sent); retries sleep on the test's clock.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import requests
from fakeapi import FakeClock
from liveapi import LiveAPI, live_client

from landscope import APIConnectionError

MiB = 1024 * 1024


class DroppingSession(requests.Session):
    """Raises ConnectionError for the first ``times`` PUTs of each part in ``parts``."""

    def __init__(self, parts: set[int], times: int = 1) -> None:
        super().__init__()
        self.parts, self.times = parts, times
        self.dropped: list[int] = []

    def request(self, method: str | bytes, url: str | bytes, *args: Any,
                **kwargs: Any) -> Any:
        if method == "PUT" and "/parts/" in str(url):
            n = int(str(url).rsplit("/", 1)[1])
            if n in self.parts and self.dropped.count(n) < self.times:
                self.dropped.append(n)
                raise requests.ConnectionError("connection dropped (test)")
        return super().request(method, url, *args, **kwargs)


def _write(path: Path, size: int, seed: int = 0) -> bytes:
    data = hashlib.shake_256(f"sdk file {seed}".encode()).digest(size)
    path.write_bytes(data)
    return data


def _puts(api: LiveAPI) -> list[int]:
    return [int(r.path.rsplit("/", 1)[1]) for r in api.requests
            if r.method == "PUT" and "/parts/" in r.path]


def test_a_file_above_one_part_goes_in_parts_with_a_dropped_part_sent_again(
        live_api: LiveAPI, tmp_path: Path) -> None:
    data = _write(tmp_path / "x.npy", 3 * MiB + 7)
    session = DroppingSession({2})
    clock = FakeClock()
    with live_client(live_api, clock, session=session, max_retries=0) as client:
        blob = client.blobs.upload(tmp_path / "x.npy", part_size=MiB)
    assert blob.id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    assert session.dropped == [2]
    assert sorted(_puts(live_api)) == [0, 1, 2, 3]  # part 2 arrived once, after the drop
    paths = [(r.method, r.path.split("/")[2]) for r in live_api.requests]
    assert ("POST", "uploads") in paths and ("POST", "blobs") not in paths
    assert live_api.requests[-1].path.endswith("/complete")
    assert all(len(r.body) <= MiB for r in live_api.requests)


def test_upload_again_after_giving_up_resumes_with_the_missing_parts_only(
        live_api: LiveAPI, tmp_path: Path) -> None:
    data = _write(tmp_path / "big.bin", 4 * MiB, seed=1)
    clock = FakeClock()
    broken = DroppingSession({1, 3}, times=99)
    with live_client(live_api, clock, session=broken, max_retries=1) as client:
        with pytest.raises(APIConnectionError, match="resume"):
            client.blobs.upload(tmp_path / "big.bin", part_size=MiB, part_attempts=2)
    assert sorted(_puts(live_api)) == [0, 2]
    live_api.requests.clear()
    with live_client(live_api, clock) as client:
        blob = client.blobs.upload(tmp_path / "big.bin", part_size=MiB)
    assert blob.id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert sorted(_puts(live_api)) == [1, 3]
    live_api.requests.clear()
    with live_client(live_api, clock) as client:  # held already: nothing is sent
        assert client.blobs.upload(tmp_path / "big.bin", part_size=MiB).id == blob.id
    assert _puts(live_api) == [] and [r.method for r in live_api.requests] == ["GET"]


def test_bytes_and_file_objects_switch_at_one_part(live_api: LiveAPI, tmp_path: Path) -> None:
    clock = FakeClock()
    small = b"s" * MiB
    big = hashlib.shake_256(b"bytes").digest(2 * MiB + 1)
    with live_client(live_api, clock) as client:
        assert client.blobs.upload(small, part_size=MiB).id == \
            "sha256:" + hashlib.sha256(small).hexdigest()
        assert [r.path for r in live_api.requests] == ["/v1/blobs"]
        assert client.blobs.upload(big, part_size=MiB).id == \
            "sha256:" + hashlib.sha256(big).hexdigest()
        f = io.BytesIO(b"header" + big[::-1])
        f.seek(6)  # from the current position, as the one-request path does
        assert client.blobs.upload(f, part_size=MiB).id == \
            "sha256:" + hashlib.sha256(big[::-1]).hexdigest()
    assert sorted(_puts(live_api)) == [0, 0, 1, 1, 2, 2]


def test_progress_counts_bytes_up_to_the_size_and_never_back(
        live_api: LiveAPI, tmp_path: Path, monkeypatch: Any) -> None:
    import landscope._progress as progress

    monkeypatch.setattr(progress.importlib, "import_module",
                        lambda name: (_ for _ in ()).throw(ImportError(name)))
    out = io.StringIO()
    original = progress.ByteProgress.__init__

    def to_out(self: Any, total: int, label: str, stream: Any = None) -> None:
        original(self, total, label, out)

    monkeypatch.setattr(progress.ByteProgress, "__init__", to_out)
    data = _write(tmp_path / "p.bin", 3 * MiB + 1, seed=2)
    with live_client(live_api, FakeClock(), session=DroppingSession({0}),
                     max_retries=0) as client:
        client.blobs.upload(tmp_path / "p.bin", part_size=MiB, progress=True)
    counts = [int(line.split()[1].split("/")[0]) for line in out.getvalue().splitlines()]
    # 0 at the start, then one line per confirmed part (part 0 last, after its drop)
    assert counts == [0, MiB, 2 * MiB, 2 * MiB + 1, len(data)]
