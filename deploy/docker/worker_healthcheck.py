#!/usr/bin/env python
"""Health check of a landscope worker container.

Healthy when every worker node this container started has a live heartbeat in Redis:
the worker's background thread keeps ``ls:worker:<name>@<host>`` (TTL ``LANDSCOPE_LEASE_S``)
while its Celery process is up. The node names are read from the file the entrypoint
wrote (``WORKER_NAMES_FILE``, default /tmp/landscope-worker-names) or given as arguments.

Exit 0: healthy. Exit 1: a node has no heartbeat, no node was started, Redis cannot be
reached (unless ``--ok-if-redis-down``: a liveness probe should not restart every worker
of a cluster because Redis is briefly away), or the settings are wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="landscope-worker-healthcheck", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("nodes", nargs="*", help="node names (name@host); default: the names file")
    p.add_argument("--names-file", type=Path,
                   default=Path(os.environ.get("WORKER_NAMES_FILE",
                                               "/tmp/landscope-worker-names")))
    p.add_argument("--ok-if-redis-down", action="store_true")
    args = p.parse_args(argv)

    nodes = list(args.nodes)
    if not nodes:
        try:
            nodes = [n.strip() for n in args.names_file.read_text().splitlines() if n.strip()]
        except OSError:
            nodes = []
    if not nodes:
        print(f"unhealthy: no worker node recorded in {args.names_file}")
        return 1

    import redis

    from landscope_service.settings import SettingsError, load_settings

    try:
        url = load_settings().redis_url
    except SettingsError as e:
        print(f"unhealthy: {e}")
        return 1
    try:
        client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
        missing = [n for n in nodes if not client.exists(f"ls:worker:{n}")]
    except redis.RedisError as e:
        print(f"redis unreachable ({e.__class__.__name__}: {e})")
        return 0 if args.ok_if_redis_down else 1
    if missing:
        print("unhealthy: no heartbeat from " + ", ".join(missing))
        return 1
    print("healthy: " + ", ".join(nodes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
