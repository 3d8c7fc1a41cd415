"""CPU instructions per submission, landscope's app against the bare Flask + Celery one.

The throughput rounds of ``api_under_load.py`` move by +-15% from one minute to the next on
a shared VM (the machine's speed changes under both sides alike). This counts instead:
each app (``landscope_service.api.create_app()``, and the bare endpoint of
``api_under_load.BARE_APP``) is called in process through WSGI, under valgrind's callgrind,
for ``--submissions`` submissions and for none; the difference divided by the number is
the instructions one submission costs in the app, the same on every run to about 1%.
What it leaves out: the HTTP server (gunicorn and gevent, the same code for both sides),
the kernel, and Redis (its CPU per submission is in ``api_under_load.py``'s report).

    .venv/bin/python benchmarks/submit_instructions.py [--submissions 300]

Needs ``valgrind`` on PATH (Debian: ``apt-get install valgrind``). About a minute and a
half per side. Never run by ``make test``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from api_under_load import BARE_APP, SUBMIT  # noqa: E402  the same request and bare endpoint

WARMUP = 20


def _environ(path: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": "POST", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "bench", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
    }
    for k, v in headers.items():
        env["HTTP_" + k.upper().replace("-", "_")] = v
    return env


def child(side: str, n: int, redis_url: str) -> None:
    """Submit ``WARMUP + n`` jobs to one app in this process (run under callgrind)."""
    app: Callable[..., Iterable[bytes]]
    if side == "landscope":
        os.environ.update(LANDSCOPE_REDIS_URL=redis_url, LANDSCOPE_API_KEYS="t:key",
                          LANDSCOPE_DATA_DIR=tempfile.mkdtemp(), LANDSCOPE_LOG_LEVEL="WARNING",
                          LANDSCOPE_MAX_QUEUED_PER_TENANT="1000000")
        from landscope_service.api import create_app

        app, path, auth = create_app(), "/v1/jobs", {"Authorization": "Bearer key"}
    else:
        scope: dict[str, Any] = {}
        exec(BARE_APP, scope)  # the same bare endpoint as the throughput benchmark
        app, path, auth = scope["create_app"](redis_url), "/submit", {}
    status: list[str] = []

    def start_response(s: str, headers: Any, exc: Any = None) -> None:
        status.append(s)

    for i in range(WARMUP + n):
        headers = dict(auth)
        if side == "landscope":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        body = json.dumps({**SUBMIT, "seed": i}).encode()
        status.clear()
        b"".join(app(_environ(path, body, headers), start_response))
        if not status[0].startswith("202"):
            raise RuntimeError(f"{side}: {status[0]}")


def instructions(side: str, n: int, redis_url: str) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         sys.executable, __file__, "--child", side, "--submissions", str(n),
         "--redis-url", redis_url],
        capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise RuntimeError(out.stderr[-2000:])
    return int(found.group(1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--submissions", type=int, default=300)
    p.add_argument("--child", choices=["landscope", "bare"])
    p.add_argument("--redis-url")
    args = p.parse_args()
    if args.child:
        child(args.child, args.submissions, args.redis_url)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not on PATH (Debian: apt-get install valgrind).")
    from landscope_service.local import find_redis_server, free_port

    port = free_port()
    redis = subprocess.Popen([find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no",
                              "--dir", tempfile.mkdtemp()], stdout=subprocess.DEVNULL)
    try:
        per: dict[str, float] = {}
        for db, side in enumerate(["landscope", "bare"]):
            url = f"redis://127.0.0.1:{port}/{db}"
            base = instructions(side, 0, url)
            total = instructions(side, args.submissions, url)
            per[side] = (total - base) / args.submissions
            print(f"{side}: {per[side] / 1e6:.2f} M instructions per submission", flush=True)
        print(f"landscope / bare: {per['landscope'] / per['bare']:.2f}")
    finally:
        redis.terminate()
        redis.wait(10)


if __name__ == "__main__":
    main()
