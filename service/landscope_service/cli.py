"""``landscope-service``: run the API, a worker, or the whole local stack."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

from .settings import SettingsError, load_settings


def _api(args: argparse.Namespace) -> int:
    load_settings()  # fail fast, naming the bad variable
    cmd = [
        sys.executable, "-m", "gunicorn", "landscope_service.api:create_app()",
        "--bind", f"{args.host}:{args.port}", "--workers", str(args.workers),
        "--worker-class", args.worker_class,
        "--access-logfile", "-" if args.access_log else "/dev/null",
        "--graceful-timeout", "10", "--timeout", "60", "--no-control-socket",
    ]
    if args.worker_class == "gevent":
        # One greenlet per connection: a long poll or a slow body holds no thread.
        cmd += ["--worker-connections", str(args.connections)]
    else:
        cmd += ["--threads", str(args.threads)]
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def _worker(args: argparse.Namespace) -> int:
    load_settings()
    os.environ["LANDSCOPE_WORKER_CONCURRENCY"] = str(args.concurrency)
    name = args.name or "worker"
    cmd = [
        sys.executable, "-m", "celery", "-A", "landscope_service.worker.tasks:app", "worker",
        "-Q", args.queues, "--concurrency", str(args.concurrency), "--pool", args.pool,
        "--hostname", f"{name}@%h", "--loglevel", args.loglevel, "--without-gossip",
        "--without-mingle", "--prefetch-multiplier", "1",
    ]
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def _up(args: argparse.Namespace) -> int:
    from .local import LocalStack

    stack = LocalStack(port=args.port, workers=args.workers, concurrency=args.concurrency,
                       api_keys=os.environ.get("LANDSCOPE_API_KEYS"))
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        stack.start()
        print(f"landscope is up at {stack.url}", flush=True)
        print(f"  private Redis at {stack.redis_url} (stopped with the stack)", flush=True)
        print(f"  export LANDSCOPE_URL={stack.url}", flush=True)
        print(f"  export LANDSCOPE_API_KEY={stack.api_key}", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        while not stopping:
            time.sleep(0.2)
    finally:
        print("stopping...", flush=True)
        stack.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="landscope-service", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    a = sub.add_parser("api", help="serve the HTTP API under gunicorn")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8000)
    a.add_argument("--workers", type=int, default=2)
    a.add_argument("--worker-class", default="gevent", choices=["gevent", "gthread"],
                   help="gevent (default): connections are greenlets, so long polls and "
                        "slow bodies hold no thread; gthread: a thread per request")
    a.add_argument("--connections", type=int, default=1000,
                   help="gevent: concurrent connections per process")
    a.add_argument("--threads", type=int, default=16,
                   help="gthread: threads per process; long polls (wait=) hold one each")
    a.add_argument("--access-log", action="store_true")
    a.set_defaults(func=_api)
    w = sub.add_parser("worker", help="run a Celery worker")
    w.add_argument("--queues", default="cpu", help="comma-separated: cpu, gpu")
    w.add_argument("--concurrency", type=int, default=1)
    w.add_argument("--pool", default="prefork", choices=["prefork", "solo", "threads"],
                   help="solo for GPU workers (one process per GPU, CUDA-safe)")
    w.add_argument("--name", default=None)
    w.add_argument("--loglevel", default="INFO")
    w.set_defaults(func=_worker)
    u = sub.add_parser("up", help="private Redis + API + worker(s) on this machine")
    u.add_argument("--port", type=int, default=None)
    u.add_argument("--workers", type=int, default=1)
    u.add_argument("--concurrency", type=int, default=1)
    u.set_defaults(func=_up)
    args = p.parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as e:
        print(f"landscope-service: configuration error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
