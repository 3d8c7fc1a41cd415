"""Job kind ``landscape_slice``: submit-time checks (no torch here).

Options: ``diagnostics/options/landscape_slice.py`` (the schema here is derived from it);
runner: ``diagnostics/slice/runner.py``. See ``docs/kinds/landscape_slice.md``.

At submit time this check also resolves ``path_job`` + ``pair`` into ``path_points`` (the
two minima's weight blobs), so the worker never reads another job, and a connectivity
result that expires later does not break a queued slice.
"""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError

from ...diagnostics.options.landscape_slice import cross_check
from .base import KindSpec, SubmitContext

__all__ = ["KIND", "LandscapeSliceOptionsSchema", "check", "resolve_path"]


def resolve_path(options: dict[str, Any], ctx: SubmitContext) -> dict[str, list[str]]:
    """Look up ``path_job`` (this API key's jobs only) and set ``options["path_points"]``.

    Returns:
        Errors by option name (empty when resolved).
    """
    job_id, pair = options.get("path_job"), options.get("pair")
    if not job_id:
        return {"path_job": ["Required for directions 'path': the id of a succeeded "
                             "level_set_connectivity job."]}
    if not pair:
        return {"pair": ["Required for directions 'path': the two minima [i, j] of the "
                         "connectivity result."]}
    get_job = getattr(ctx, "get_job", None)
    job = get_job(str(job_id)) if get_job is not None else None
    if job is None:
        return {"path_job": [f"No job {job_id!r} for this API key."]}
    if job.get("status") != "succeeded":
        return {"path_job": [f"Job {job_id} is {job.get('status')}; a path needs a succeeded "
                             "level_set_connectivity job. Wait for it, then submit."]}
    if job.get("kind") != "level_set_connectivity":
        return {"path_job": [f"Job {job_id} is a {job.get('kind')} job; give a "
                             "level_set_connectivity job."]}
    minima = (job.get("result") or {}).get("minima") or []
    i, j = int(pair[0]), int(pair[1])
    if i == j or not (0 <= i < len(minima) and 0 <= j < len(minima)):
        return {"pair": [f"Give two different minima between 0 and {len(minima) - 1} (the job "
                         f"has {len(minima)} minima), got [{i}, {j}]."]}
    blobs = [minima[i].get("blob"), minima[j].get("blob")]
    missing = [k for k, b in zip((i, j), blobs, strict=True) if not b]
    if missing:
        return {"pair": [f"Minimum {missing[0]} of job {job_id} was trained inside that job and "
                         "its parameters were not stored; slice between minima given as "
                         "weight blobs, or use directions 'minima' with your own blobs."]}
    options["path_points"] = [str(b) for b in blobs]
    return {}


def check(options: dict[str, Any], ctx: SubmitContext) -> None:
    """Submit-time checks: the cross-field conditions of the options table, every weight
    blob against the architecture, the loss for ``accuracy``, and the path's job.

    Raises:
        ValidationError: field-level messages relative to ``options``.
    """
    errors: dict[str, Any] = {}
    kind = options.get("directions")
    if kind == "path":
        options["path_points"] = None  # set only from path_job + pair, never by the caller
        errors.update(resolve_path(options, ctx))
    _, problems = cross_check(options)
    for name, msgs in problems.items():
        if name == "path_points" and errors:
            continue
        errors.setdefault(name, msgs)
    for key in ("minima", "direction_blobs", "checkpoints", "path_points"):
        refs = options.get(key) or []
        bad: dict[int, list[str]] = {}
        for i, ref in enumerate(refs):
            try:
                ctx.check_weights(ref)
            except ValueError as e:
                bad[i] = [str(e)]
        if bad:
            errors[key if key != "path_points" else "path_job"] = bad
    if options.get("accuracy") and ctx.loss != "cross_entropy":
        errors["accuracy"] = [f"Accuracy needs loss 'cross_entropy'; this request has "
                              f"{ctx.loss!r}. Set accuracy to false."]
    if errors:
        raise ValidationError(errors)


KIND = KindSpec.from_table(
    "landscape_slice",
    check=check,
    summary="1-D and 2-D loss slices along filter-normalised random directions, Hessian "
    "eigenvectors, the plane of minima, a connectivity path, a trajectory's PCA or given "
    "directions; minimum, sharpness, convexity; contour, surface and VTK files.",
)

LandscapeSliceOptionsSchema = KIND.options_schema
