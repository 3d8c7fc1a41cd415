"""The ``landscope`` command line: submit jobs, follow them, fetch results and files.

Exit codes: 0 success; 1 the job failed or was cancelled; 2 usage error (bad
arguments, unreadable job file, no URL or key); 3 any other error (an API error
answer, the service unreachable, a wait that timed out, a result asked for before
the job finished). Errors are one line on standard error.

``--output FILE`` (submit, wait, result) writes the job as JSON (``id``, ``status``,
``result``, ``error``, ``artifacts``, ...) to FILE, atomically (a temporary file renamed
into place), whatever the job's final status, so a pipeline step can keep it as its
output and still branch on the exit code. No file is written when the command fails
before it has a job (exit 2, or exit 3 for an API error or a wait that timed out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, NoReturn, TextIO

from landscope._client import Client
from landscope._exceptions import LandscopeError, WaitTimeout
from landscope._version import __version__
from landscope.types import Job

__all__ = ["EXIT_ERROR", "EXIT_JOB_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_ERROR = 3

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "expired")


class UsageError(Exception):
    """A mistake in how the command was called (exit code 2)."""


class _ExitError(Exception):
    """An error that has its own exit code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ExitError(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)")


# -- output helpers ---------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _print_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list) and value and not all(_is_scalar(v) for v in value):
        for index, item in enumerate(value):
            yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, _format_scalar(value)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _format_scalar(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list):
        if len(value) > 8:
            shown = ", ".join(_format_scalar(v) for v in value[:8])
            return f"[{shown}, ... ({len(value)} items)]"
        return "[" + ", ".join(_format_scalar(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    if not rows:
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        out.write("  ".join(cells).rstrip() + "\n")


def _progress_text(job: Job) -> str:
    text = f"{job.progress.fraction:.0%}"
    if job.progress.stage and job.progress.stage != job.status:
        text += f" {job.progress.stage}"
    if job.progress.message:
        text += f": {job.progress.message}"
    return text


def _describe_job(job: Job, out: TextIO) -> None:
    rows: list[list[str]] = [
        ["id:", job.id],
        ["kind:", job.kind],
        ["status:", job.status + (" (cancel requested)" if job.cancel_requested else "")],
        ["progress:", _progress_text(job)],
    ]
    for label, when in (
        ("created:", job.created_at),
        ("started:", job.started_at),
        ("finished:", job.finished_at),
        ("expires:", job.expires_at),
    ):
        if when is not None:
            rows.append([label, when.isoformat()])
    if job.metadata:
        rows.append(["metadata:", ", ".join(f"{k}={v}" for k, v in job.metadata.items())])
    if job.error is not None:
        rows.append(["error:", f"{job.error.code}: {_one_line(job.error.message)}"])
    for artifact in job.artifacts:
        rows.append(["artifact:", f"{artifact.name} ({artifact.media_type}, {artifact.size} B)"])
    _table(rows, out)


def _print_result(job: Job, as_json: bool, out: TextIO) -> None:
    result = dict(job.result or {})
    if as_json:
        _print_json(result, out)
    else:
        _table([[key, value] for key, value in _flatten(result)], out)


def _job_failure(job: Job) -> _ExitError:
    if job.status == "cancelled":
        return _ExitError(EXIT_JOB_FAILED, f"job {job.id} was cancelled")
    if job.error is not None:
        reason = f"{job.error.code}: {_one_line(job.error.message)}"
    else:
        reason = "no error given"
    return _ExitError(EXIT_JOB_FAILED, f"job {job.id} failed: {reason}")


# -- commands ---------------------------------------------------------------------------


def _read_job_file(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise UsageError(f"cannot read job file {path}: {e.strerror or e}") from e
    try:
        body = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(
            f"job file {path} is not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
        ) from e
    if not isinstance(body, dict):
        raise UsageError(f"job file {path} must hold a JSON object, got {type(body).__name__}")
    return body


def _wait(client: Client, job: Job | str, args: argparse.Namespace) -> Job:
    return client.jobs.wait(
        job, timeout=getattr(args, "timeout", None), progress=not args.no_progress
    )


def _write_output(job: Job, path: str | None) -> None:
    if not path:
        return
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(job.to_json(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _ExitError(EXIT_ERROR, f"cannot write --output {path}: {e.strerror or e}") from e


def _finish(job: Job, args: argparse.Namespace, out: TextIO) -> int:
    _write_output(job, getattr(args, "output", None))
    if args.json:
        _print_json(job.to_json(), out)
    elif job.status == "succeeded":
        _print_result(job, False, out)
    if job.status != "succeeded":
        raise _job_failure(job)
    return EXIT_OK


def cmd_submit(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope submit job.json``: print the new job's id (or wait for it)."""
    body = _read_job_file(args.job_file)
    job = client.jobs.submit(body, idempotency_key=args.idempotency_key)
    if not args.wait:
        _write_output(job, args.output)
        if args.json:
            _print_json(job.to_json(), out)
        else:
            out.write(job.id + "\n")
        return EXIT_OK
    if not args.json:
        sys.stderr.write(f"submitted {job.id}\n")
    return _finish(_wait(client, job, args), args, out)


def cmd_status(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope status ID``: describe a job."""
    job = client.jobs.get(args.job_id)
    if args.json:
        _print_json(job.to_json(), out)
    else:
        _describe_job(job, out)
    return EXIT_OK


def cmd_wait(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope wait ID``: wait for a job; print its result."""
    return _finish(_wait(client, args.job_id, args), args, out)


def cmd_result(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope result ID``: print the result of a finished job."""
    job = client.jobs.get(args.job_id)
    if args.wait:
        job = client.jobs.wait(job, progress=not args.no_progress)
    if job.status in ("queued", "running"):
        raise _ExitError(
            EXIT_ERROR,
            f"job {job.id} is still {job.status} ({_progress_text(job)}); "
            f"run `landscope wait {job.id}` or `landscope result --wait {job.id}`",
        )
    _write_output(job, args.output)
    if job.status != "succeeded":
        raise _job_failure(job)
    _print_result(job, args.json, out)
    return EXIT_OK


def cmd_cancel(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope cancel ID``: cancel a job."""
    job = client.jobs.cancel(args.job_id)
    if args.json:
        _print_json(job.to_json(), out)
    elif job.status == "cancelled":
        out.write(f"{job.id} cancelled\n")
    else:
        out.write(f"{job.id} {job.status}, cancel requested\n")
    return EXIT_OK


def _parse_meta(pairs: Sequence[str]) -> dict[str, str]:
    meta: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta expects KEY=VALUE, got {pair!r}")
        meta[key] = value
    return meta


def cmd_list(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope list``: jobs, newest first."""
    meta = _parse_meta(args.meta or [])
    if args.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {args.limit}")
    page_size = min(args.limit, 100) if args.limit else None
    jobs_iter = client.jobs.list(
        status=args.status, kind=args.kind, metadata=meta or None, limit=page_size
    )
    jobs = list(islice(jobs_iter, args.limit) if args.limit else jobs_iter)
    if args.json:
        _print_json([job.to_json() for job in jobs], out)
        return EXIT_OK
    rows = [["ID", "KIND", "STATUS", "PROGRESS", "CREATED"]]
    for job in jobs:
        created = job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else ""
        rows.append([job.id, job.kind, job.status, _progress_text(job), created])
    _table(rows, out)
    return EXIT_OK


def cmd_artifacts(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope artifacts ID``: list a job's files, or download them."""
    if args.out is None and not args.name:
        job = client.jobs.get(args.job_id)
        if args.json:
            _print_json([a.to_json() for a in job.artifacts], out)
        else:
            _table([[a.name, a.media_type, f"{a.size} B"] for a in job.artifacts], out)
        return EXIT_OK
    try:
        paths = client.jobs.download_artifacts(
            args.job_id, args.out if args.out is not None else ".", names=args.name or None
        )
    except KeyError as e:
        raise _ExitError(EXIT_ERROR, str(e.args[0])) from e
    for path in paths:
        out.write(f"{path}\n")
    return EXIT_OK


def cmd_upload(client: Client, args: argparse.Namespace, out: TextIO) -> int:
    """``landscope upload FILE``: upload a file; print its blob id."""
    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"no such file: {args.file}")
    blob = client.blobs.upload(path)
    if args.json:
        created = blob.created_at.isoformat() if blob.created_at else None
        _print_json({"id": blob.id, "size": blob.size, "created_at": created}, out)
    else:
        out.write(blob.id + "\n")
    return EXIT_OK


# -- parser -----------------------------------------------------------------------------

Command = Callable[[Client, argparse.Namespace, TextIO], int]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``landscope``."""
    parser = _Parser(
        prog="landscope",
        description="Loss-landscape jobs on a landscope service.",
        epilog="Exit codes: 0 ok, 1 job failed or cancelled, 2 usage error, 3 other error.",
    )
    parser.add_argument("--version", action="version", version=f"landscope {__version__}")
    parser.add_argument("--url", help="service URL (default: $LANDSCOPE_URL)")
    parser.add_argument("--api-key", help="API key (default: $LANDSCOPE_API_KEY)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        return p

    def add_json(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="print JSON")

    def add_output(p: argparse.ArgumentParser) -> None:
        p.add_argument("--output", "-o", metavar="FILE",
                       help="write the job (status, result, error) as JSON to FILE")

    p = add("submit", cmd_submit, "Submit the job request in a JSON file ('-' for stdin).")
    p.add_argument("job_file", metavar="JOB.json")
    p.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while waiting")
    p.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")
    p.add_argument("--idempotency-key", metavar="K", help="resubmitting with K never duplicates")
    add_output(p)
    add_json(p)

    p = add("status", cmd_status, "Show a job.")
    p.add_argument("job_id", metavar="ID")
    add_json(p)

    p = add("wait", cmd_wait, "Wait for a job to finish; print its result.")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--timeout", type=float, help="give up after this many seconds")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_output(p)
    add_json(p)

    p = add("result", cmd_result, "Print the result of a finished job.")
    p.add_argument("job_id", metavar="ID")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print the result as JSON")
    fmt.add_argument("--table", action="store_true", help="print a key/value table (default)")
    p.add_argument("--wait", action="store_true", help="wait for the job first")
    p.add_argument("--no-progress", action="store_true", help="with --wait: no progress bar")
    add_output(p)

    p = add("cancel", cmd_cancel, "Cancel a job.")
    p.add_argument("job_id", metavar="ID")
    add_json(p)

    p = add("list", cmd_list, "List jobs, newest first.")
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--kind")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE", help="metadata filter")
    p.add_argument("--limit", type=int, default=50, help="show at most N jobs (0: all)")
    add_json(p)

    p = add("artifacts", cmd_artifacts, "List a job's files, or download them.")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--out", metavar="DIR", help="download into DIR")
    p.add_argument(
        "--name", action="append", metavar="N", help="only this file (repeatable); downloads"
    )
    add_json(p)

    p = add("upload", cmd_upload, "Upload a file (weights, data); print its blob id.")
    p.add_argument("file", metavar="FILE")
    add_json(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments after the program name (``sys.argv[1:]`` by default).

    Returns:
        The exit code.
    """
    parser = build_parser()
    out = sys.stdout
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help and --version
            return e.code if isinstance(e.code, int) else EXIT_OK
        try:
            client = Client(args.url, api_key=args.api_key)
        except LandscopeError as e:
            raise UsageError(f"{e} On the command line: --url URL, --api-key KEY.") from e
        with client:
            func: Command = args.func
            return func(client, args, out)
    except _ExitError as e:
        sys.stderr.write(f"landscope: {_one_line(str(e))}\n")
        return e.code
    except UsageError as e:
        sys.stderr.write(f"landscope: error: {_one_line(str(e))}\n")
        return EXIT_USAGE
    except WaitTimeout as e:
        sys.stderr.write(f"landscope: error: {_one_line(str(e))}\n")
        return EXIT_ERROR
    except LandscopeError as e:
        sys.stderr.write(f"landscope: error: {type(e).__name__}: {_one_line(str(e))}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("landscope: interrupted\n")
        return 130
