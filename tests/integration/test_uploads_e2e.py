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
