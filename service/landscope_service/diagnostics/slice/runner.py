"""Runner of the ``landscape_slice`` job kind: a 1-D or 2-D loss slice and its measures.

1. Directions (:mod:`.directions`): filter-normalised random, top Hessian eigenvectors,
   the plane of given minima, a connectivity path's line or plane, a trajectory's PCA, or
   given blobs; optionally orthogonalised; norms and cosine reported.
2. The grid: rows of ``beta`` fan out as executor pieces (:func:`.grid.rows_piece`), each
   evaluating many points per batched pass; progress counts grid points.
3. Measures (:mod:`.measures`): the centre's loss and the curvature along each axis from
   five extra points (``0``, ``+-h`` per axis, ``h`` the grid spacing), the slice's
   minimum, optionally the convexity map; the given points' losses, both at their slice
   coordinates and at their own parameters.
4. Artifacts (:mod:`.plots`): ``slice.npz``, ``contour.png`` and ``surface.png`` (2-D) or
   ``profile.png`` (1-D), ``slice.vtk``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..context import RunContext
from ..options.landscape_slice import (
    DIRECTION_KINDS,
    MAX_RESOLUTION,
    OPTIONS,
    cross_check,
    nested_range,
)
from ..output import Artifact, RunOutput
from ..plots import caption_text, figure_artifacts
from ..problem import Params, Problem, flatten
from .directions import (
    SliceDirections,
    coordinates,
    direction_report,
    given_directions,
    hessian_top,
    orthogonalize,
    plane_through,
    random_filter_normalized,
    trajectory_pca,
)
from .grid import evaluate_points, points_per_pass, rows_piece
from .measures import axis_curvature, convexity_map, slice_minimum
from .plots import contour_figure, npz_bytes, profile_figure, surface_figure, vtk_bytes

__all__ = ["DEFAULT_OPTIONS", "DIRECTION_KINDS", "MAX_RESOLUTION", "resolve_options",
           "run_landscape_slice"]

DEFAULT_OPTIONS: dict[str, Any] = OPTIONS.defaults()
"""Defaults, from the kind's option table ``diagnostics/options/landscape_slice.py``."""

_MAX_PIECES = 16


def resolve_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The table's checks and defaults, then the cross-field conditions
    (:func:`..options.landscape_slice.cross_check`).

    ``range`` becomes one ``[low, high]`` per axis and ``resolution`` one count per axis; a
    library caller may also give ``range`` flat, ``[low, high]`` or ``[a_lo, a_hi, b_lo,
    b_hi]``.

    Raises:
        ValueError or TypeError: naming the option and the fix.
    """
    given = dict(options or {})
    if "range" in given:
        given["range"] = nested_range(given["range"])
    opts, errors = cross_check(OPTIONS.resolve(given))
    for name, messages in errors.items():
        raise ValueError(f"options.{name}: {messages[0]}")
    return opts


def _f(x: float) -> float | None:
    v = float(x)
    return v if math.isfinite(v) else None


def _nested(a: np.ndarray) -> list[Any]:
    return [(_nested(r) if a.ndim > 1 else _f(r)) for r in a]  # type: ignore[misc]


def _load_all(ctx: RunContext, refs: list[str], problem: Problem, what: str
              ) -> list[Tensor]:
    """Load every blob of ``refs`` (flat), checking for cancellation and reporting each."""
    out = []
    for i, ref in enumerate(refs):
        ctx.monitor.check()
        out.append(_load_flat(ctx, ref, problem, what))
        ctx.monitor.report("directions", 0.0, f"{i + 1}/{len(refs)} {what}s loaded")
    return out


def _load_flat(ctx: RunContext, ref: str, problem: Problem, what: str) -> Tensor:
    loaded = ctx.load_params(str(ref))
    like = problem.params
    missing, extra = set(like) - set(loaded), set(loaded) - set(like)
    if missing or extra:
        raise ValueError(f"{what} {ref!r} does not match the model: missing "
                         f"{sorted(missing)}, unexpected {sorted(extra)}.")
    out: Params = {}
    for k, v in like.items():
        if tuple(loaded[k].shape) != tuple(v.shape):
            raise ValueError(f"{what} {ref!r}: shape mismatch for {k}: expected "
                             f"{tuple(v.shape)}, got {tuple(loaded[k].shape)}.")
        out[k] = loaded[k].to(device=v.device, dtype=v.dtype)
    return flatten(out)


def _directions(problem: Problem, opts: dict[str, Any], ctx: RunContext, seed: int
                ) -> SliceDirections:
    dims, kind = int(opts["dims"]), opts["directions"]
    origin = flatten({k: v.detach() for k, v in problem.params.items()})

    def random_second() -> Tensor:
        r = random_filter_normalized(problem, 2, seed=seed, bias_norm=opts["bias_norm"],
                                     normalization=opts["normalization"])
        return r.vectors[1]

    if kind == "random_filter_normalized":
        return random_filter_normalized(problem, dims, seed=seed, bias_norm=opts["bias_norm"],
                                        normalization=opts["normalization"])
    if kind == "hessian_top":
        h = opts["hessian"]
        return hessian_top(problem, dims, seed=seed, tol=float(h["tol"]),
                           max_products=int(h["max_products"]),
                           monitor=ctx.monitor.sub(0.0, 0.2, "hessian_top"))
    if kind in ("minima", "path"):
        refs = opts["minima"] if kind == "minima" else opts["path_points"]
        what = "minimum" if kind == "minima" else "path point"
        pts = _load_all(ctx, list(refs), problem, f"{what} blob")
        if kind == "path":
            pair = opts.get("pair") or [0, 1]
            labels = [f"minimum {pair[0]}", f"minimum {pair[1]}"]
            if len(pts) == 3:  # start, control point, end: the plane of the bent path
                pts = [pts[0], pts[2], pts[1]]
                labels = [labels[0], labels[1], "path control point"]
            if dims == 1:
                pts, labels = pts[:2], labels[:2]
        else:
            labels = [f"minimum {i}" for i in range(len(pts))]
        extra = random_second() if dims == 2 and len(pts) == 2 else None
        d = plane_through(pts, labels, dims, extra=extra)
        d.info = {"points": [str(r) for r in refs]}
        if kind == "path":
            d.info.update({"path_job": opts.get("path_job"), "pair": opts.get("pair"),
                           "path": "bent (control point)" if len(refs) == 3
                           else "straight line between the pair's minima"})
        return d
    if kind == "trajectory_pca":
        cps = _load_all(ctx, list(opts["checkpoints"]), problem, "checkpoint blob")
        return trajectory_pca(origin, cps, dims)
    vecs = _load_all(ctx, list(opts["direction_blobs"]), problem, "direction blob")
    d = given_directions(origin, vecs, [f"given {i}" for i in range(dims)])
    d.info = {"blobs": [str(r) for r in opts["direction_blobs"]]}
    return d


def _theory(kind: str, dirs: SliceDirections, curv: list[float]) -> dict[str, Any]:
    applies = [
        "Along a direction d, d^2/dt^2 L(theta + t d) at t = 0 is d^T H d (THEORY.md "
        "section 3); 'sharpness' reports it by a second difference on the grid spacing.",
    ]
    predictions: list[dict[str, Any]] = []
    if kind == "random_filter_normalized" and dirs.info.get("normalization") == "filter":
        applies.append("Filter normalisation (Li et al. 2018): rescaling a ReLU layer by c "
                       "and the next by 1/c changes neither the function nor this slice.")
    if kind == "hessian_top":
        for j, lam in enumerate(dirs.info.get("eigenvalues", [])):
            c = curv[j]
            predictions.append({
                "statement": "Along a unit Hessian eigenvector the curvature at the centre "
                             "is its eigenvalue.",
                "predicted": _f(lam),
                "measured": _f(c),
                "consistent": bool(abs(c - lam) <= 1e-3 * max(abs(lam), 1e-12)),
            })
    return {"applies": applies, "predictions": predictions,
            "notes": ["A slice is a 1-D or 2-D section of a P-dimensional landscape; "
                      "minima and convexity seen in it are those of the section."]}


def run_landscape_slice(problem: Problem, options: dict[str, Any], ctx: RunContext
                        ) -> RunOutput:
    """A 1-D or 2-D loss slice, its measures and its plots.

    Args:
        problem: model, parameters (the centre, except for ``minima``/``path`` whose
            origin is the first point), data and loss.
        options: see :data:`DEFAULT_OPTIONS` and ``docs/kinds/landscape_slice.md``.
        ctx: monitor, executor (grid rows as pieces), seed, parameter loader (blobs).

    Returns:
        :class:`RunOutput`: the JSON result and ``slice.npz``, ``contour.png`` and
        ``surface.png`` (2-D) or ``profile.png`` (1-D), ``slice.vtk``.

    Raises:
        ValueError: on bad options or blobs that do not fit the model.
        Cancelled: when the monitor says so (between passes).
    """
    opts = resolve_options(options)
    mon = ctx.monitor
    dims, kind = int(opts["dims"]), str(opts["directions"])
    seed = int(opts["seed"]) if opts["seed"] is not None else int(ctx.seed)
    if opts["accuracy"] and problem.loss != "cross_entropy":
        raise ValueError("options.accuracy needs loss 'cross_entropy'.")
    mon.report("directions", 0.0, f"{kind} directions", force=True)
    dirs = _directions(problem, opts, ctx, seed)
    cos_before: float | None = None
    if opts["orthogonalize"] and dims == 2:
        dirs.vectors, cos_before = orthogonalize(dirs.vectors)
    distance = coordinates(dirs) if dirs.points else 0.0
    if kind == "trajectory_pca" and not (options or {}).get("range") and (
            dirs.trajectory is not None):
        opts["range"] = _covering(dirs.trajectory.cpu().numpy())
    mon.check()
    start = 0.2 if kind == "hessian_top" else 0.02

    alpha = np.linspace(float(opts["range"][0][0]), float(opts["range"][0][1]),
                        int(opts["resolution"][0]))
    beta = (np.linspace(float(opts["range"][1][0]), float(opts["range"][1][1]),
                        int(opts["resolution"][1])) if dims == 2 else None)
    n_rows = 1 if beta is None else beta.size
    total = alpha.size * n_rows
    per_pass = (int(opts["points_per_pass"]) if opts["points_per_pass"]
                else points_per_pass(problem))
    rows_per_piece = (int(opts["rows_per_piece"]) if opts["rows_per_piece"]
                      else max(1, math.ceil(n_rows / _MAX_PIECES)))
    payloads = []
    for r0 in range(0, n_rows, rows_per_piece):
        rows = ([0.0] if beta is None else [float(b) for b in beta[r0 : r0 + rows_per_piece]])
        pl: dict[str, Any] = {"origin": dirs.origin, "d0": dirs.vectors[0],
                              "alphas": [float(a) for a in alpha], "betas": rows,
                              "accuracy": bool(opts["accuracy"]), "per_pass": per_pass,
                              "first_row": r0, "num_rows": n_rows}
        if dims == 2:
            pl["d1"] = dirs.vectors[1]
        payloads.append(pl)
    mon.report("grid", start, f"0/{total} grid points", force=True)
    outs = ctx.executor.map(rows_piece, problem, payloads, mon.sub(start, 0.9, "grid"))
    loss = np.concatenate([np.asarray(o["loss"].cpu(), dtype=np.float64) for o in outs])
    acc = (np.concatenate([np.asarray(o["accuracy"].cpu(), dtype=np.float64) for o in outs])
           if opts["accuracy"] else None)
    if dims == 1:
        loss, acc = loss.reshape(-1), None if acc is None else acc.reshape(-1)

    # ---- centre, curvature along the axes, the given points
    mon.report("measures", 0.9, "centre curvature and points", force=True)
    steps = [float(alpha[1] - alpha[0])] + ([] if beta is None else [float(beta[1] - beta[0])])
    extra = [[0.0] * dims]
    for j in range(dims):
        for s in (1.0, -1.0):
            c = [0.0] * dims
            c[j] = s * steps[j]
            extra.append(c)
    for pt in dirs.points:
        extra.append([pt["alpha"]] + ([pt["beta"]] if dims == 2 else []))
    ev, _ = evaluate_points(problem, dirs.origin, dirs.vectors,
                            torch.tensor(extra, dtype=torch.float64), per_pass=per_pass)
    ev_np = ev.numpy()
    centre_loss = float(ev_np[0])
    curv = [axis_curvature(centre_loss, float(ev_np[1 + 2 * j]), float(ev_np[2 + 2 * j]),
                           steps[j]) for j in range(dims)]
    axis_names = ["alpha", "beta"][:dims]
    points_json = []
    for k, pt in enumerate(dirs.points):
        with torch.no_grad():
            own = float(problem.full_loss(_unflat(pt["theta"], problem)))
        points_json.append({"label": pt["label"], "alpha": _f(pt["alpha"]),
                            "beta": None if pt.get("beta") is None else _f(pt["beta"]),
                            "loss": _f(own), "loss_at_coordinates": _f(ev_np[1 + 2 * dims + k]),
                            "distance_from_slice": _f(pt["distance_from_slice"])})
    minimum = slice_minimum(loss, alpha, beta)
    conv = convexity_map(loss, alpha, beta) if opts["convexity"] and beta is not None else None
    trajectory = dirs.trajectory.cpu().numpy() if dirs.trajectory is not None else None
    warnings: list[str] = []
    if not np.isfinite(loss).all():
        warnings.append(f"{int((~np.isfinite(loss)).sum())} grid point(s) have a non-finite "
                        "loss (reported as null): the model diverges there.")
    if dirs.points and distance > 1e-6 * max(1.0, float(torch.linalg.vector_norm(
            dirs.origin.double()))):
        warnings.append(f"A given point lies {distance:.3g} away from the slice; its "
                        "coordinates are its projection.")
    finite = loss[np.isfinite(loss)]
    result: dict[str, Any] = {
        "dims": dims,
        "direction_kind": kind,
        "seed": seed,
        "directions": direction_report(dirs, problem.params, cos_before),
        "direction_info": dirs.info,
        "orthogonalized": bool(opts["orthogonalize"] and dims == 2),
        "origin": "first point" if kind in ("minima", "path") else "model weights",
        "axes": {"alpha": [float(a) for a in alpha],
                 "beta": None if beta is None else [float(b) for b in beta]},
        "loss": _nested(loss),
        "accuracy": None if acc is None else _nested(acc),
        "loss_name": problem.loss,
        "centre_loss": _f(centre_loss),
        "minimum": None if minimum is None else {
            "loss": _f(minimum["loss"]), "alpha": minimum["alpha"], "beta": minimum["beta"]},
        "maximum_loss": _f(float(finite.max())) if finite.size else None,
        "sharpness": {name: {"curvature": _f(c), "step": steps[j],
                             "max_increase": _f(float(np.nanmax(
                                 _axis_line(loss, alpha, beta, j))) - centre_loss)}
                      for j, (name, c) in enumerate(zip(axis_names, curv, strict=True))},
        "convexity": None if conv is None else {
            "ratio": _nested(conv["ratio"]),
            "nonconvex_fraction": conv["nonconvex_fraction"],
            "max_ratio": conv["max_ratio"],
            "method": "central differences of the grid values (interior points); boundary "
                      "points are null",
        },
        "points": points_json,
        "trajectory": None if trajectory is None else [[_f(x) for x in row]
                                                        for row in trajectory],
        "num_points": total,
        "points_per_pass": per_pass,
        "pieces": len(payloads),
        "warnings": warnings,
        "theory": _theory(kind, dirs, curv),
    }
    mon.report("plots", 0.95, "plots", force=True)
    labels = dirs.names
    arrays: dict[str, np.ndarray] = {"alpha": alpha, "loss": loss,
                                     "direction_norms": np.asarray(
                                         [d["norm"] for d in result["directions"]])}
    if beta is not None:
        arrays["beta"] = beta
    if acc is not None:
        arrays["accuracy"] = acc
    if conv is not None:
        arrays["convexity"] = conv["ratio"]
    if trajectory is not None:
        arrays["trajectory"] = trajectory
    if dirs.points:
        arrays["points"] = np.asarray([[p["alpha"], p["beta"] if p["beta"] is not None
                                        else np.nan] for p in points_json], dtype=np.float64)
    artifacts = [Artifact("slice.npz", "application/octet-stream", npz_bytes(arrays))]
    title = f"Loss slice ({kind.replace('_', ' ')})"
    if not opts["plots"]:
        pass
    elif beta is not None:
        artifacts += figure_artifacts("contour", contour_figure(
            alpha, beta, loss, labels=labels, points=points_json, trajectory=trajectory,
            minimum=result["minimum"], title=title, caption=_caption(problem, kind, opts)))
        artifacts += figure_artifacts("surface", surface_figure(
            alpha, beta, loss, labels=labels, title=title,
            caption=_caption(problem, kind, opts)))
    else:
        artifacts += figure_artifacts("profile", profile_figure(
            alpha, loss, label=labels[0], accuracy=acc, points=points_json, title=title,
            caption=_caption(problem, kind, opts)))
    vtk_extra = {"accuracy": acc} if acc is not None else None
    artifacts.append(Artifact("slice.vtk", "text/plain", vtk_bytes(alpha, beta, loss,
                                                                   vtk_extra)))
    mon.report("done", 1.0, f"{total}/{total} grid points", force=True)
    return RunOutput(result=result, artifacts=artifacts)


def _caption(problem: Problem, kind: str, opts: dict[str, Any]) -> str:
    """The figures' caption line: P, N, loss, dtype, directions and grid."""
    grid = " x ".join(str(int(r)) for r in opts["resolution"])
    norm = (f", {opts['normalization']} normalisation"
            if kind == "random_filter_normalized" else "")
    return caption_text(what=f"Loss on a {grid} grid", num_params=problem.num_params,
                        num_samples=problem.num_samples, loss=problem.loss,
                        dtype=str(problem.dtype), method=f"directions: {kind}{norm}")


def _covering(points: np.ndarray, margin: float = 0.2) -> list[list[float]]:
    """Per-axis ranges covering ``points`` and the origin, widened by ``margin`` of the
    span on each side (the default range of ``trajectory_pca``)."""
    out = []
    for j in range(points.shape[1]):
        lo = min(0.0, float(points[:, j].min()))
        hi = max(0.0, float(points[:, j].max()))
        pad = margin * max(hi - lo, 1e-12)
        out.append([lo - pad, hi + pad])
    return out


def _unflat(theta: Tensor, problem: Problem) -> Params:
    from ..problem import unflatten

    return unflatten(theta.to(device=problem.device, dtype=problem.dtype), problem.params)


def _axis_line(loss: np.ndarray, alpha: np.ndarray, beta: np.ndarray | None, axis: int
               ) -> np.ndarray:
    """Grid values on the line through the grid point nearest the centre along ``axis``."""
    if beta is None:
        return loss
    i0 = int(np.argmin(np.abs(beta)))
    j0 = int(np.argmin(np.abs(alpha)))
    return loss[i0, :] if axis == 0 else loss[:, j0]
