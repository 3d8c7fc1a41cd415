"""landscope quickstart: one job of every kind through the SDK, with progress bars.

    python examples/quickstart.py --local          # starts a private stack, then stops it
    LANDSCOPE_URL=... LANDSCOPE_API_KEY=... python examples/quickstart.py

Prints each result and writes the plots to --out (default out/quickstart).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import landscope

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# Each section module defines run(client, outdir); they are run in this order.
SECTIONS = ("_hessian_spectrum", "_minimizer_manifold", "_level_set_connectivity",
            "_landscape_slice", "_from_module", "_sweep")


def evaluate_section(client: landscope.Client, outdir: Path) -> None:
    request = landscope.JobRequest(
        kind="evaluate",
        model=landscope.model(landscope.mlp(3, [16, 16], 1, "tanh"), init_seed=0),
        data=landscope.synthetic_data("teacher_student", num_samples=256, seed=0),
        loss="mse",
        metadata={"example": "quickstart"},
    )
    job = client.jobs.submit(request)
    print(f"\n== evaluate ({job.id})")
    result = client.jobs.result(job, progress=True, timeout=300)
    print(f"  loss          {result.loss:.6g}")
    print(f"  |grad|        {result.grad_norm:.6g}")
    print(f"  parameters    {result.num_params}")
    print(f"  samples       {result.num_samples}")
    pl = result.per_sample_loss
    print(f"  per-sample    min {pl.min:.4g}  mean {pl.mean:.4g}  max {pl.max:.4g}")


STACK_KEY: str | None = None


@contextlib.contextmanager
def local_stack() -> Iterator[landscope.Client]:
    from landscope_service.local import LocalStack

    print("starting a private Redis, the API and one worker...", flush=True)
    t0 = time.monotonic()
    with LocalStack(workers=1, concurrency=1) as stack:
        print(f"stack up at {stack.url} in {time.monotonic() - t0:.1f} s", flush=True)
        with landscope.Client(stack.url, api_key=stack.api_key) as client:
            global STACK_KEY
            STACK_KEY = stack.api_key  # printed with the /ui address at the end
            yield client
    print("stack stopped.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local", action="store_true", help="start and stop a private stack")
    p.add_argument("--out", type=Path, default=Path("out/quickstart"))
    p.add_argument("--keep", action="store_true",
                   help="keep the stack up after the run (browse /ui) until Ctrl-C")
    p.add_argument("--only", nargs="*", default=None,
                   help="sections to run: evaluate hessian_spectrum minimizer_manifold "
                        "level_set_connectivity landscape_slice from_module sweep")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = local_stack() if args.local else landscope.Client()
    with ctx as client:
        if args.only is None or "evaluate" in args.only:
            evaluate_section(client, args.out)
        for name in SECTIONS:
            if args.only is not None and name.lstrip("_") not in args.only:
                continue
            if not (HERE / f"{name}.py").exists():
                continue
            importlib.import_module(name).run(client, args.out)
        print(f"\nplots written to {args.out.resolve()}")
        closing = finish(client, args.out, keep=args.keep)
    if args.local and not args.keep:
        closing[0] += " (stopped now: add --keep to browse it)"
    print("\n".join(closing))
    return 0


def finish(client: landscope.Client, out: Path, *, keep: bool) -> list[str]:
    """Writes one job's report.html; returns the last lines: where to browse the jobs
    (/ui) and that report's path. ``keep``: wait for Ctrl-C first (the stack stays up)."""
    report = None
    jobs = list(client.jobs.list(status="succeeded", limit=50))
    jobs.sort(key=lambda j: j.kind != "hessian_spectrum")  # one with figures first
    for job in jobs:
        if any(a.name == "report.html" for a in job.artifacts):
            report = out / "report.html"
            report.write_bytes(client.jobs.artifact(job, "report.html"))
            break
    key = STACK_KEY or os.environ.get("LANDSCOPE_API_KEY") or "<your API key>"
    lines = [f"web UI: {client.base_url.rstrip('/')}/ui/  (API key {key})",
             f"report: {report.resolve() if report else 'no finished job has a report.html'}"]
    if keep:
        print("\n".join(lines), "\nthe stack stays up until Ctrl-C", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
