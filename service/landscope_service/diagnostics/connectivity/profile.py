"""The highest loss along a path, certified between samples.

A path maximum taken from samples alone misses a narrow bump between two samples. Here
every sample carries the loss ``f(t) = L(gamma(t))`` *and* its directional derivative
``f'(t) = grad L(gamma(t)) . gamma'(t)`` (the gradient is computed anyway, in the same
batched call), and each interval ``[t0, t1]`` between neighbouring samples gets an
upper bound on ``max f`` over it:

* Taylor's theorem with ``|f''| <= K`` on the interval gives two upper parabolas,
  ``p0(s) = f0 + f0' s + K s^2 / 2`` from the left end and
  ``p1(s) = f1 - f1' (h - s) + K (h - s)^2 / 2`` from the right end (``h = t1 - t0``).
  ``f <= min(p0, p1)``; ``p0 - p1`` is linear in ``s``, so the bound
  ``U = max_s min(p0(s), p1(s))`` is attained at an end or at the one crossing point
  (closed form, no search). ``U`` bounds whatever a pair of extrema between the two
  samples could hide, with or without a sign change of ``f'``.
* ``K`` is a local curvature estimate: ``curvature_safety`` (default 2) times the
  largest ``|f''|`` of the cubic Hermite interpolants (values and derivatives at both
  ends) on the interval and on its two neighbours. It is an estimate, not a proof: a
  feature narrower than the sampling that leaves no trace in the values and derivatives
  of any sample cannot be bounded by any finite sampling.
* Intervals whose bound exceeds the highest sample by more than the resolution are
  refined: a sign change of ``f'`` from rising to falling brackets a maximum, and the
  new sample goes to the maximum of the cubic interpolant (kept inside the middle 80% of
  the bracket); other intervals are bisected. Each round evaluates every new point of
  every curve in one batched call.

The result of a curve: ``barrier`` = the highest sample and ``resolution`` =
``max(0, max_k U_k - barrier)``, so, under the curvature estimate,

    max_t f(gamma(t))  lies in  [barrier, barrier + resolution]:

every reported barrier is at least the maximum of the loss along its path, up to
``resolution``.

``bracketed`` says whether the maximum is pinned down next to the highest sample
``t_k``: every interval other than the two around ``t_k`` has a bound at or below that
sample, so the maximum lies in ``[t_{k-1}, t_{k+1}]`` (a rising-to-falling bracket).

Curves (:class:`LineCurve`, :class:`PolylineCurve`, :class:`BezierCurve`,
:class:`HermiteCurve`) give points and velocities; a polyline's corners are always
samples and its intervals never straddle one (the velocity jumps there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor

from .objective import Objective

__all__ = [
    "BezierCurve",
    "Certified",
    "Curve",
    "HermiteCurve",
    "LineCurve",
    "LinearConfig",
    "PathResult",
    "PolylineCurve",
    "certify_profiles",
    "interval_bounds",
]


class Curve(Protocol):
    """A path ``gamma: [0, 1] -> R^P`` with its velocity."""

    def points(self, ts: Tensor) -> Tensor:
        """``(K,)`` parameters to ``(K, P)`` points."""

    def velocity(self, ts: Tensor, side: int) -> Tensor:
        """``(K, P)`` velocities ``gamma'(t)``: right (``side=+1``) or left (``-1``) limits."""

    def breakpoints(self) -> Tensor | None:
        """Parameters where the velocity may jump (always sampled), or None."""


@dataclass(frozen=True)
class LinearConfig:
    """Sampling and certification of a path profile.

    Attributes:
        num_points: uniform samples on [0, 1] to start from, ends included (>= 2).
        refine_rounds: most refinement rounds of the certification.
        refine_points: most new samples per curve and round.
        resolution: absolute resolution in loss units; None: ``rel_resolution`` times the
            rise of the highest sample above the lower end (plus ``1e-12`` times
            ``max(1, |highest sample|)``).
        rel_resolution: relative resolution when ``resolution`` is None.
        curvature_safety: factor on the local curvature estimate (>= 1).
    """

    num_points: int = 33
    refine_rounds: int = 40
    refine_points: int = 16
    resolution: float | None = None
    rel_resolution: float = 1e-4
    curvature_safety: float = 2.0

    def __post_init__(self) -> None:
        if self.num_points < 2:
            raise ValueError(f"num_points must be >= 2, got {self.num_points}.")
        if self.refine_rounds < 0 or self.refine_points < 0:
            raise ValueError("refine_rounds and refine_points must be >= 0.")
        if self.resolution is not None and not self.resolution > 0:
            raise ValueError(f"resolution must be > 0 or None, got {self.resolution}.")
        if not self.rel_resolution > 0:
            raise ValueError(f"rel_resolution must be > 0, got {self.rel_resolution}.")
        if not self.curvature_safety >= 1:
            raise ValueError(f"curvature_safety must be >= 1, got {self.curvature_safety}.")


@dataclass
class PathResult:
    """A path between two points and the loss profile along it.

    Attributes:
        method: ``"linear"``, ``"bezier"`` or ``"neb"``.
        barrier: the highest loss sampled along the path; with ``resolution`` the path
            maximum lies in ``[barrier, barrier + resolution]`` under the curvature
            estimate (module doc), so it bounds the minimax barrier from above up to
            ``resolution``.
        resolution: the certified margin above ``barrier``.
        bracketed: the maximum lies in the two intervals around the highest sample.
        ts: path coordinates in [0, 1] of the samples (sorted).
        losses: the loss at each of ``ts``.
        peak_t: coordinate of the highest sample.
        num_loss_evals: loss evaluations spent on this path.
        num_grad_evals: gradient evaluations spent on this path.
        nodes: the path's defining points (control point, or NEB pivots), ``(K, P)``.
    """

    method: str
    barrier: float
    ts: list[float]
    losses: list[float]
    peak_t: float
    num_loss_evals: int
    num_grad_evals: int
    nodes: Tensor | None = None
    resolution: float = 0.0
    bracketed: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def upper(self) -> float:
        """``barrier + resolution``: the certified upper bound on the path maximum."""
        return self.barrier + self.resolution


@dataclass
class Certified:
    """Samples of one curve and its certified maximum.

    ``barrier`` is the certified upper bound (highest sample plus ``resolution``).
    """

    ts: Tensor
    values: Tensor
    barrier: float
    resolution: float
    bracketed: bool
    peak_t: float
    target: float


# ---------------------------------------------------------------------- curves
class LineCurve:
    """``gamma(t) = a + t (b - a)``."""

    def __init__(self, a: Tensor, b: Tensor) -> None:
        self.a, self.d = a, b - a

    def points(self, ts: Tensor) -> Tensor:
        return self.a.unsqueeze(0) + ts.unsqueeze(1) * self.d.unsqueeze(0)

    def velocity(self, ts: Tensor, side: int) -> Tensor:
        return self.d.unsqueeze(0).expand(ts.shape[0], -1)

    def breakpoints(self) -> Tensor | None:
        return None


class BezierCurve:
    """Quadratic Bezier ``(1 - t)^2 a + 2 t (1 - t) c + t^2 b``."""

    def __init__(self, a: Tensor, c: Tensor, b: Tensor) -> None:
        self.a, self.c, self.b = a, c, b

    def points(self, ts: Tensor) -> Tensor:
        t = ts.unsqueeze(1)
        return (1 - t) ** 2 * self.a + 2 * t * (1 - t) * self.c + t**2 * self.b

    def velocity(self, ts: Tensor, side: int) -> Tensor:
        t = ts.unsqueeze(1)
        return 2 * (1 - t) * (self.c - self.a) + 2 * t * (self.b - self.c)

    def breakpoints(self) -> Tensor | None:
        return None


def chain_knots(chain: Tensor) -> Tensor:
    """Normalised arc-length parameters of the pivots of ``chain`` (strictly increasing)."""
    seg = (chain[1:] - chain[:-1]).norm(dim=1)
    total = seg.sum()
    n = chain.shape[0]
    ar = torch.arange(n, dtype=chain.dtype, device=chain.device)
    if bool(total > 0):
        cum = torch.cat([torch.zeros(1, dtype=chain.dtype, device=chain.device), seg.cumsum(0)])
        knots = cum / total
    else:
        knots = ar / (n - 1)
    # Strictly increasing (zero-length segments get a tiny width).
    knots = torch.cummax(knots + 1e-9 * ar / (n - 1), 0).values
    return knots / knots[-1]


class PolylineCurve:
    """The polyline through ``chain`` at the parameters ``knots`` (its corners)."""

    def __init__(self, chain: Tensor, knots: Tensor | None = None) -> None:
        self.chain = chain
        self.knots = chain_knots(chain) if knots is None else knots

    def _seg(self, ts: Tensor, side: int) -> Tensor:
        # Right limit: the segment starting at or before t; left: the one ending at or after.
        idx = torch.searchsorted(self.knots, ts.contiguous(), right=side > 0) - 1
        return idx.clamp(0, self.chain.shape[0] - 2)

    def points(self, ts: Tensor) -> Tensor:
        idx = self._seg(ts, +1)
        t0, t1 = self.knots[idx], self.knots[idx + 1]
        w = ((ts - t0) / (t1 - t0)).clamp(0, 1).unsqueeze(1)
        return self.chain[idx] * (1 - w) + self.chain[idx + 1] * w

    def velocity(self, ts: Tensor, side: int) -> Tensor:
        idx = self._seg(ts, side)
        t0, t1 = self.knots[idx], self.knots[idx + 1]
        return (self.chain[idx + 1] - self.chain[idx]) / (t1 - t0).unsqueeze(1)

    def breakpoints(self) -> Tensor | None:
        return self.knots


class HermiteCurve:
    """C1 cubic Hermite curve through the pivots of ``chain`` at ``knots``.

    Tangents by finite differences over the neighbouring knots (one-sided at the ends),
    as in a Catmull-Rom spline with chord-length parametrisation.
    """

    def __init__(self, chain: Tensor, knots: Tensor | None = None) -> None:
        self.chain = chain
        self.knots = chain_knots(chain) if knots is None else knots
        k = self.knots
        m = torch.empty_like(chain)
        m[1:-1] = (chain[2:] - chain[:-2]) / (k[2:] - k[:-2]).unsqueeze(1)
        m[0] = (chain[1] - chain[0]) / (k[1] - k[0])
        m[-1] = (chain[-1] - chain[-2]) / (k[-1] - k[-2])
        self.m = m

    def _parts(self, ts: Tensor, side: int) -> tuple[Tensor, Tensor, Tensor]:
        n = self.chain.shape[0]
        idx = torch.searchsorted(self.knots, ts.contiguous(), right=side > 0) - 1
        idx = idx.clamp(0, n - 2)
        t0, t1 = self.knots[idx], self.knots[idx + 1]
        h = (t1 - t0).unsqueeze(1)
        u = ((ts - t0) / (t1 - t0)).clamp(0, 1).unsqueeze(1)
        return idx, h, u

    def points(self, ts: Tensor) -> Tensor:
        idx, h, u = self._parts(ts, +1)
        c, m = self.chain, self.m
        h00 = 2 * u**3 - 3 * u**2 + 1
        h10 = u**3 - 2 * u**2 + u
        h01 = -2 * u**3 + 3 * u**2
        h11 = u**3 - u**2
        return h00 * c[idx] + h10 * h * m[idx] + h01 * c[idx + 1] + h11 * h * m[idx + 1]

    def velocity(self, ts: Tensor, side: int) -> Tensor:
        idx, h, u = self._parts(ts, side)
        c, m = self.chain, self.m
        d00 = (6 * u**2 - 6 * u) / h
        d10 = 3 * u**2 - 4 * u + 1
        d01 = (-6 * u**2 + 6 * u) / h
        d11 = 3 * u**2 - 2 * u
        return d00 * c[idx] + d10 * m[idx] + d01 * c[idx + 1] + d11 * m[idx + 1]

    def breakpoints(self) -> Tensor | None:
        return self.knots


# ---------------------------------------------------------------------- bounds
def _hermite_curvature(f0: Tensor, f1: Tensor, d0: Tensor, d1: Tensor, h: Tensor) -> Tensor:
    """Largest ``|f''|`` of the cubic Hermite interpolant on each interval (at its ends)."""
    df = (f1 - f0) / (h * h)
    c0 = (6 * df - (4 * d0 + 2 * d1) / h).abs()
    c1 = (-6 * df + (2 * d0 + 4 * d1) / h).abs()
    return torch.maximum(c0, c1)


def interval_bounds(
    ts: Tensor,
    f: Tensor,
    d_right: Tensor,
    d_left: Tensor,
    safety: float,
    valid: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Upper bound on ``f`` over each interval between sorted samples ``ts``.

    Args:
        ts: sorted sample parameters ``(..., n)`` (rows of several curves allowed).
        f: values ``(..., n)``.
        d_right: right derivatives ``f'(t+)`` at the samples.
        d_left: left derivatives ``f'(t-)``.
        safety: factor on the local curvature estimate.
        valid: ``(..., n - 1)`` intervals that exist (padding excluded); default all.

    Returns:
        ``(U, K)``: the bound ``(..., n - 1)`` of each interval (``-inf`` where not
        valid) and the curvature used.
    """
    tiny = torch.finfo(ts.dtype).tiny
    h = (ts[..., 1:] - ts[..., :-1]).clamp_min(tiny)
    f0, f1 = f[..., :-1], f[..., 1:]
    d0, d1 = d_right[..., :-1], d_left[..., 1:]
    c = _hermite_curvature(f0, f1, d0, d1, h)
    if valid is not None:
        c = torch.where(valid, c, torch.zeros_like(c))
    k = c.clone()
    if c.shape[-1] > 1:
        k[..., 1:] = torch.maximum(k[..., 1:], c[..., :-1])
        k[..., :-1] = torch.maximum(k[..., :-1], c[..., 1:])
    k = safety * k
    # Consistency: K must allow the derivative change seen on the interval.
    k = torch.maximum(k, (d1 - d0).abs() / h)
    denom = d0 - d1 + k * h
    num = -(f0 - f1 + d1 * h - k * h * h / 2)
    s = torch.where(denom > 0, num / denom.clamp_min(tiny), h / 2)
    s = torch.minimum(torch.maximum(s, torch.zeros_like(s)), h)
    p0 = f0 + d0 * s + k * s * s / 2
    p1 = f1 - d1 * (h - s) + k * (h - s) ** 2 / 2
    u = torch.maximum(torch.minimum(p0, p1), torch.maximum(f0, f1))
    if valid is not None:
        u = torch.where(valid, u, torch.full_like(u, -math.inf))
    return u, k


def _new_points(
    t0: Tensor, t1: Tensor, f0: Tensor, f1: Tensor, d0: Tensor, d1: Tensor
) -> Tensor:
    """Where to sample intervals: cubic maximum inside brackets, else the middle."""
    h = t1 - t0
    mid = t0 + h / 2
    bracket = (d0 > 0) & (d1 < 0)
    # Cubic Hermite on u in [0, 1]: p'(u) = a u^2 + b u + c with
    a = 6 * (f0 - f1) + 3 * h * (d0 + d1)
    b = -6 * (f0 - f1) - 2 * h * (2 * d0 + d1)
    c = h * d0
    disc = (b * b - 4 * a * c).clamp_min(0)
    sq = disc.sqrt()
    safe_a = torch.where(a.abs() > 0, a, torch.ones_like(a))
    r1 = (-b - sq) / (2 * safe_a)
    r2 = (-b + sq) / (2 * safe_a)
    safe_b = torch.where(b.abs() > 0, b, torch.ones_like(b))
    lin = torch.where(b.abs() > 0, -c / safe_b, torch.full_like(b, 0.5))
    # The maximum of the cubic: the root where p' goes from + to - (p'' < 0).
    pick = torch.where((2 * a * r1 + b) < 0, r1, r2)
    u = torch.where(a.abs() > 1e-14 * (b.abs() + c.abs() + 1e-300), pick, lin)
    u = torch.nan_to_num(u, nan=0.5).clamp(0.1, 0.9)
    return torch.where(bracket, t0 + u * h, mid)


def certify_profiles(
    obj: Objective,
    curves: list[Curve],
    config: LinearConfig,
    *,
    like: Tensor,
    targets: list[float | None] | None = None,
) -> list[Certified]:
    """Certified maxima of ``obj`` along each of ``curves`` (see the module doc).

    All curves are handled together: their samples are kept as rows of one padded
    array, the bounds of every interval of every curve are computed at once, and each
    round evaluates the new points of every curve in one
    :meth:`Objective.values_and_grads` call.

    Args:
        obj: the objective.
        curves: the paths.
        config: sampling and resolution.
        like: a tensor with the device and dtype to use.
        targets: optional per-curve level: once a curve's certified barrier is at or
            below it, the curve is not refined further (a lower barrier could change
            nothing for the caller).

    Returns:
        One :class:`Certified` per curve.
    """
    n_c = len(curves)
    if n_c == 0:
        return []
    tgt = list(targets) if targets is not None else [None] * n_c
    if len(tgt) != n_c:
        raise ValueError(f"Expected {n_c} targets, got {len(tgt)}.")
    dt, dev = like.dtype, like.device
    base = torch.linspace(0.0, 1.0, config.num_points, dtype=dt, device=dev)
    rows: list[Tensor] = []
    for cv in curves:
        bp = cv.breakpoints()
        rows.append(base if bp is None else torch.unique(torch.cat([base, bp.to(base)])))
    ts, valid = _pad(rows, dt, dev)
    f = torch.zeros_like(ts)
    dr = torch.zeros_like(ts)
    dl = torch.zeros_like(ts)
    _fill(obj, curves, list(range(n_c)), rows, ts, valid, f, dr, dl)
    target = torch.tensor(
        [math.nan if t is None else float(t) for t in tgt], dtype=dt, device=dev
    )
    finished = torch.zeros(n_c, dtype=torch.bool, device=dev)
    rounds = 0
    while True:
        vint = valid[:, 1:]
        u, _ = interval_bounds(ts, f, dr, dl, config.curvature_safety, vint)
        top = torch.where(valid, f, torch.full_like(f, -math.inf)).max(dim=1).values
        bound = torch.maximum(top, u.max(dim=1).values)
        last = valid.sum(dim=1) - 1
        low_end = torch.minimum(f[:, 0], f.gather(1, last.unsqueeze(1)).squeeze(1))
        if config.resolution is not None:
            eps = torch.full_like(top, config.resolution)
        else:
            eps = config.rel_resolution * (top - low_end).clamp_min(0)
        eps = eps + 1e-12 * top.abs().clamp_min(1.0)
        done = (bound - top <= eps) | (bound <= target) | finished
        if rounds >= config.refine_rounds or config.refine_points == 0 or bool(done.all()):
            break
        sel = (u > (top + eps).unsqueeze(1)) & (~done).unsqueeze(1)
        k = min(config.refine_points, u.shape[1])
        kth = torch.topk(torch.where(sel, u, torch.full_like(u, -math.inf)), k, dim=1)
        sel = sel & (u >= kth.values[:, -1:])
        r_idx, c_idx = sel.nonzero(as_tuple=True)
        pts = _new_points_at(ts, f, dr, dl, r_idx, c_idx)
        inside = (pts > ts[r_idx, c_idx]) & (pts < ts[r_idx, c_idx + 1])
        r_idx, pts = r_idx[inside], pts[inside]
        # Curves with nothing left to sample (intervals too small to split) are final.
        has_new = torch.zeros(n_c, dtype=torch.bool, device=dev)
        has_new[r_idx] = True
        finished = finished | ((~done) & (~has_new))
        if r_idx.numel() == 0:
            break
        rounds += 1
        r_host = r_idx.cpu().tolist()
        groups: dict[int, list[int]] = {}
        for pos, r in enumerate(r_host):
            groups.setdefault(r, []).append(pos)
        active = sorted(groups)
        new_rows = [pts[torch.tensor(groups[r], device=dev)] for r in active]
        extra_ts, extra_valid = _pad(new_rows, dt, dev, n_rows=n_c, at=active)
        ts = torch.cat([ts, extra_ts], dim=1)
        valid = torch.cat([valid, extra_valid], dim=1)
        f = torch.cat([f, torch.zeros_like(extra_ts)], dim=1)
        dr = torch.cat([dr, torch.zeros_like(extra_ts)], dim=1)
        dl = torch.cat([dl, torch.zeros_like(extra_ts)], dim=1)
        start = ts.shape[1] - extra_ts.shape[1]
        _fill(obj, curves, active, new_rows, ts, valid, f, dr, dl, start=start)
        order = torch.argsort(ts, dim=1)
        ts, valid = ts.gather(1, order), valid.gather(1, order)
        f, dr, dl = f.gather(1, order), dr.gather(1, order), dl.gather(1, order)
    out: list[Certified] = []
    for ci in range(n_c):
        m = valid[ci]
        tsi, fi = ts[ci][m], f[ci][m]
        ui = u[ci][vint[ci]]
        out.append(_finish(tsi, fi, ui, float(bound[ci]), tgt[ci]))
    return out


def _pad(
    rows: list[Tensor],
    dt: torch.dtype,
    dev: torch.device,
    *,
    n_rows: int | None = None,
    at: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Rows of different lengths as one array; padding parameters beyond 1, increasing."""
    width = max(int(r.shape[0]) for r in rows)
    n = len(rows) if n_rows is None else n_rows
    ts = 2.0 + torch.arange(width, dtype=dt, device=dev).repeat(n, 1)
    valid = torch.zeros(n, width, dtype=torch.bool, device=dev)
    for k, r in enumerate(rows):
        row = k if at is None else at[k]
        ts[row, : r.shape[0]] = r
        valid[row, : r.shape[0]] = True
    return ts, valid


def _fill(
    obj: Objective,
    curves: list[Curve],
    which: list[int],
    rows: list[Tensor],
    ts: Tensor,
    valid: Tensor,
    f: Tensor,
    dr: Tensor,
    dl: Tensor,
    start: int = 0,
) -> None:
    """Evaluate the new samples ``rows`` of the curves ``which`` (one batched call) and
    write them at columns ``start + k`` of their rows."""
    evals = _evaluate(obj, [curves[c] for c in which], rows)
    for c, r, (fv, drv, dlv) in zip(which, rows, evals, strict=True):
        n = int(r.shape[0])
        f[c, start : start + n] = fv
        dr[c, start : start + n] = drv
        dl[c, start : start + n] = dlv


def _new_points_at(
    ts: Tensor, f: Tensor, dr: Tensor, dl: Tensor, r_idx: Tensor, c_idx: Tensor
) -> Tensor:
    """Where to sample the intervals ``(r_idx, c_idx)`` of a padded array: the cubic
    maximum inside a rising-to-falling bracket, else the middle."""
    t0, t1 = ts[r_idx, c_idx], ts[r_idx, c_idx + 1]
    return _new_points(
        t0, t1, f[r_idx, c_idx], f[r_idx, c_idx + 1], dr[r_idx, c_idx], dl[r_idx, c_idx + 1]
    )


def _finish(
    ts: Tensor, f: Tensor, u: Tensor, bound: float, target: float | None
) -> Certified:
    if not bool(torch.isfinite(f).all()):
        raise RuntimeError("The loss is not finite along the path.")
    k = int(torch.argmax(f))
    top = float(f[k])
    # Bracketed: the path maximum lies next to the highest sample, in
    # [t_{k-1}, t_{k+1}] (that sample is not below its neighbours); every other interval's
    # bound is at or below the highest sample.
    others = torch.ones_like(u, dtype=torch.bool)
    others[max(k - 1, 0) : k + 1] = False
    bracketed = not bool((u[others] > top).any()) if u.numel() else True
    return Certified(
        ts=ts,
        values=f,
        barrier=bound,
        resolution=bound - top,
        bracketed=bracketed,
        peak_t=float(ts[k]),
        target=math.nan if target is None else float(target),
    )


def _evaluate(
    obj: Objective, curves: list[Curve], ts_list: list[Tensor]
) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Values and right/left directional derivatives at ``ts`` of each curve, one call."""
    pts = torch.cat([cv.points(ts) for cv, ts in zip(curves, ts_list, strict=True)])
    vals, grads = obj.values_and_grads(pts)
    out: list[tuple[Tensor, Tensor, Tensor]] = []
    off = 0
    for cv, ts in zip(curves, ts_list, strict=True):
        n = ts.shape[0]
        g = grads[off : off + n]
        dr = (g * cv.velocity(ts, +1)).sum(dim=1)
        dl = (g * cv.velocity(ts, -1)).sum(dim=1)
        out.append((vals[off : off + n], dr, dl))
        off += n
    return out


def result_from(
    method: str,
    cert: Certified,
    loss_evals: int,
    grad_evals: int,
    nodes: Tensor | None,
    **extra: Any,
) -> PathResult:
    """A :class:`PathResult` from a certified profile."""
    ts_l = [float(t) for t in cert.ts.detach().cpu().tolist()]
    vals_l = [float(v) for v in cert.values.detach().cpu().tolist()]
    if not all(math.isfinite(v) for v in vals_l) or not math.isfinite(cert.barrier):
        raise RuntimeError(f"{method} path: the loss is not finite along the path.")
    return PathResult(
        method=method,
        barrier=cert.barrier - cert.resolution,
        ts=ts_l,
        losses=vals_l,
        peak_t=cert.peak_t,
        num_loss_evals=loss_evals,
        num_grad_evals=grad_evals,
        nodes=nodes,
        resolution=cert.resolution,
        bracketed=cert.bracketed,
        extra=dict(extra),
    )
