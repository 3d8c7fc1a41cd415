"""Low paths between two points of a loss landscape, and the highest loss along them.

The barrier of a path ``gamma: [0, 1] -> R^P`` from ``a`` to ``b`` is
``max_t f(gamma(t))``. For any path it is an upper bound on the minimax barrier

    B(a, b) = min over paths gamma of max_t f(gamma(t)),

so better path finders give tighter bounds (THEORY.md, section 1). Three finders, all
on an :class:`~.objective.Objective` (any differentiable ``f: R^P -> R`` of a flat
vector, so analytic test functions and networks share this code):

* :func:`linear_path`: ``gamma(t) = (1 - t) a + t b``; the loss on a uniform grid, then
  zoomed around the highest grid point (Goodfellow et al. 2015 used the grid alone).
* :func:`bezier_path`: the quadratic Bezier curve
  ``phi_c(t) = (1 - t)^2 a + 2 t (1 - t) c + t^2 b`` whose control point ``c`` minimises
  the expected loss along the curve, ``E_{t ~ U(0, 1)} f(phi_c(t))``, by stochastic
  gradient steps on sampled ``t`` (Garipov et al. 2018, "Loss Surfaces, Mode
  Connectivity, and Fast Ensembling of DNNs", section 3.2). The gradient is
  ``grad_c = E_t[2 t (1 - t) grad f(phi_c(t))]``.
* :func:`neb_path`: the nudged elastic band (Jónsson, Mills & Jacobsen 1998; improved
  tangent and climbing image of Henkelman & Jónsson 2000; Henkelman, Uberuaga &
  Jónsson 2000) in the AutoNEB form of Draxler et al. 2018 ("Essentially No Barriers in
  Neural Network Energy Landscape", section 3): the path is a chain of pivots;
  each cycle relaxes the interior pivots under the NEB force, then evaluates the
  straight segments between neighbouring pivots and inserts a new pivot where a
  segment rises most above its endpoints (the highest residual), so resolution is
  added near the highest point. The path reported is the piecewise-linear chain
  through the pivots, evaluated densely: a genuine continuous path, hence a genuine
  upper bound up to the resolution of the final evaluation.

NEB force on interior image ``k`` with unit tangent ``tau_k`` (improved tangent):

    F_k = -(grad f(x_k) - (grad f(x_k) . tau_k) tau_k)
          + kappa (|x_{k+1} - x_k| - |x_k - x_{k-1}|) tau_k,

and for the climbing (highest) image ``F = -grad f + 2 (grad f . tau) tau`` (only when
it rises above both ends by more than ``insert_tol`` times the rise of the initial
straight chain: on a flat valley floor there is no saddle to climb to). Steps are
taken with Adam on ``-F`` under a cosine-decayed learning rate; the learning rate is
relative to the per-coordinate RMS distance ``|b - a| / sqrt(P)`` and the spring
constant ``kappa`` is relative to the mean perpendicular force per unit segment
length, which makes the defaults scale-free (the same defaults serve the Müller-Brown
potential and small networks).

All loops keep values on the device; a host synchronisation happens once per
refinement round or AutoNEB cycle, not per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .objective import Objective

__all__ = [
    "BezierConfig",
    "LinearConfig",
    "NEBConfig",
    "PathResult",
    "bezier_path",
    "linear_path",
    "neb_path",
    "profile_curve",
]

Curve = Callable[[Tensor], Tensor]
"""``curve(ts) -> points``: ``ts`` of shape ``(K,)`` in [0, 1] to points ``(K, P)``."""


@dataclass
class PathResult:
    """A path between two points and the loss profile along it.

    Attributes:
        method: ``"linear"``, ``"bezier"`` or ``"neb"``.
        barrier: the highest loss found along the path, ``max_t f(gamma(t))``; an
            upper bound on the minimax barrier between the endpoints.
        ts: path coordinates in [0, 1] of the evaluated points (sorted); for NEB the
            normalised arc length along the chain.
        losses: the loss at each of ``ts``.
        peak_t: coordinate of the highest point.
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
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LinearConfig:
    """Evaluation grid of a path profile.

    Attributes:
        num_points: uniform grid points on [0, 1], endpoints included (>= 2).
        refine_rounds: zoom rounds around the highest point.
        refine_points: new points per zoom round, spread over the two grid intervals
            adjacent to the current highest point.
    """

    num_points: int = 33
    refine_rounds: int = 3
    refine_points: int = 8

    def __post_init__(self) -> None:
        if self.num_points < 2:
            raise ValueError(f"num_points must be >= 2, got {self.num_points}.")
        if self.refine_rounds < 0 or self.refine_points < 0:
            raise ValueError("refine_rounds and refine_points must be >= 0.")


@dataclass(frozen=True)
class BezierConfig:
    """Training of a quadratic Bezier curve (Garipov et al. 2018).

    Attributes:
        steps: Adam steps on the control point.
        lr: learning rate relative to the RMS per-coordinate distance of the endpoints.
        samples: ``t`` samples per step (Monte-Carlo estimate of the expected loss).
    """

    steps: int = 300
    lr: float = 0.05
    samples: int = 8

    def __post_init__(self) -> None:
        if self.steps < 0 or self.samples < 1 or not self.lr > 0:
            raise ValueError("Bezier: steps >= 0, samples >= 1 and lr > 0 are required.")


@dataclass(frozen=True)
class NEBConfig:
    """Nudged elastic band with AutoNEB pivot insertion (Draxler et al. 2018).

    Attributes:
        images: interior pivots of the initial (straight) chain.
        cycles: AutoNEB cycles; each relaxes the chain, then inserts pivots.
        steps: Adam steps per cycle.
        lr: learning rate relative to the RMS per-coordinate endpoint distance; it
            decays with a cosine within each cycle and halves from cycle to cycle.
        spring: spring constant relative to the mean perpendicular force per unit
            segment length.
        climb: use a climbing image from the second cycle on.
        max_pivots: largest number of pivots, endpoints included.
        insert_per_cycle: pivots inserted at most per cycle.
        segment_points: interior points per segment when looking for the highest
            residual.
        insert_tol: a segment gets a new pivot only if it rises above both its ends by
            more than ``insert_tol`` times the loss range along the chain.
    """

    images: int = 5
    cycles: int = 4
    steps: int = 150
    lr: float = 0.05
    spring: float = 1.0
    climb: bool = True
    max_pivots: int = 24
    insert_per_cycle: int = 2
    segment_points: int = 7
    insert_tol: float = 1e-3

    def __post_init__(self) -> None:
        if self.images < 1 or self.cycles < 1 or self.steps < 0:
            raise ValueError("NEB: images >= 1, cycles >= 1 and steps >= 0 are required.")
        if not self.lr > 0 or self.spring < 0 or self.max_pivots < self.images + 2:
            raise ValueError("NEB: lr > 0, spring >= 0 and max_pivots >= images + 2 required.")


# ---------------------------------------------------------------------- profiles
def profile_curve(
    obj: Objective,
    curve: Curve,
    config: LinearConfig,
    *,
    like: Tensor,
    extra_ts: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Loss along ``curve`` on a uniform grid, zoomed around the highest point.

    Each zoom round takes the highest evaluated point ``t_k`` and evaluates
    ``refine_points`` new points evenly inside ``(t_{k-1}, t_{k+1})``; a smooth
    single peak is then located to within ``(2 / (refine_points + 1))^rounds`` of the
    grid spacing.

    Returns:
        ``(ts, losses)``, sorted by ``t``, on the device of ``like``.
    """
    ts = torch.linspace(0.0, 1.0, config.num_points, dtype=like.dtype, device=like.device)
    if extra_ts is not None:
        ts = torch.unique(torch.cat([ts, extra_ts.to(like)]))
    vals = obj.values(curve(ts))
    for _ in range(config.refine_rounds):
        if config.refine_points == 0:
            break
        k = int(torch.argmax(vals))  # one host sync per round
        lo = ts[max(k - 1, 0)]
        hi = ts[min(k + 1, ts.shape[0] - 1)]
        frac = torch.arange(1, config.refine_points + 1, dtype=like.dtype, device=like.device)
        new_t = lo + (hi - lo) * frac / (config.refine_points + 1)
        new_t = new_t[(new_t > lo) & (new_t < hi)]
        if new_t.numel() == 0:
            break
        new_v = obj.values(curve(new_t))
        ts = torch.cat([ts, new_t])
        vals = torch.cat([vals, new_v])
        order = torch.argsort(ts)
        ts, vals = ts[order], vals[order]
    return ts, vals


def _result(
    method: str,
    ts: Tensor,
    vals: Tensor,
    loss_evals: int,
    grad_evals: int,
    nodes: Tensor | None,
    **extra: Any,
) -> PathResult:
    ts_l = [float(t) for t in ts.detach().cpu().tolist()]
    vals_l = [float(v) for v in vals.detach().cpu().tolist()]
    if not all(math.isfinite(v) for v in vals_l):
        raise RuntimeError(f"{method} path: the loss is not finite along the path.")
    k = max(range(len(vals_l)), key=vals_l.__getitem__)
    return PathResult(
        method=method,
        barrier=vals_l[k],
        ts=ts_l,
        losses=vals_l,
        peak_t=ts_l[k],
        num_loss_evals=loss_evals,
        num_grad_evals=grad_evals,
        nodes=nodes,
        extra=dict(extra),
    )


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(
            f"Shape mismatch: expected two vectors of equal shape (P,), got "
            f"{tuple(a.shape)} and {tuple(b.shape)}."
        )


def _rms(d: Tensor) -> Tensor:
    return d.pow(2).mean().sqrt()


# ---------------------------------------------------------------------- linear
def linear_path(
    obj: Objective, a: Tensor, b: Tensor, config: LinearConfig | None = None
) -> PathResult:
    """Loss along the straight segment ``(1 - t) a + t b``, peak refined.

    Example:
        For ``f(x) = (x^2 - 1)^2`` in one dimension, ``a = -1``, ``b = 1``, the
        barrier is ``f(0) = 1`` (the grid contains ``t = 1/2`` when ``num_points`` is odd).
    """
    _check_pair(a, b)
    cfg = config or LinearConfig()
    e0, g0 = obj.num_loss_evals, obj.num_grad_evals
    d = b - a

    def curve(ts: Tensor) -> Tensor:
        return a.unsqueeze(0) + ts.unsqueeze(1) * d.unsqueeze(0)

    ts, vals = profile_curve(obj, curve, cfg, like=a)
    return _result("linear", ts, vals, obj.num_loss_evals - e0, obj.num_grad_evals - g0, None)


# ---------------------------------------------------------------------- bezier
def _bezier(a: Tensor, c: Tensor, b: Tensor, ts: Tensor) -> Tensor:
    t = ts.unsqueeze(1)
    return (1 - t) ** 2 * a + 2 * t * (1 - t) * c + t**2 * b


def bezier_path(
    obj: Objective,
    a: Tensor,
    b: Tensor,
    config: BezierConfig | None = None,
    profile: LinearConfig | None = None,
    *,
    seed: int = 0,
) -> PathResult:
    """Quadratic Bezier curve trained to minimise the mean loss along it.

    Minimises ``E_{t ~ U(0,1)} f(phi_c(t))`` over the control point ``c`` (initialised
    at the midpoint), with ``samples`` stratified draws of ``t`` per Adam step, then
    evaluates the trained curve like :func:`linear_path`. See Garipov et al. 2018,
    section 3.2 (their default is the same quadratic Bezier curve with a uniform
    ``t``). Returns ``nodes = c`` with shape ``(1, P)``.
    """
    _check_pair(a, b)
    cfg = config or BezierConfig()
    prof = profile or LinearConfig()
    e0, g0 = obj.num_loss_evals, obj.num_grad_evals
    c = 0.5 * (a + b)
    scale = _rms(b - a)
    if cfg.steps > 0 and bool(scale > 0):
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        m = torch.zeros_like(c)
        v = torch.zeros_like(c)
        beta1, beta2, eps = 0.9, 0.999, 1e-12
        base = torch.arange(cfg.samples, dtype=a.dtype) / cfg.samples
        for step in range(cfg.steps):
            u = torch.rand(cfg.samples, generator=gen, dtype=a.dtype)
            ts = (base + u / cfg.samples).to(a.device)  # stratified samples
            _, g = obj.values_and_grads(_bezier(a, c, b, ts))
            w = (2 * ts * (1 - ts)).unsqueeze(1)
            grad = (w * g).mean(dim=0)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad * grad
            mh = m / (1 - beta1 ** (step + 1))
            vh = v / (1 - beta2 ** (step + 1))
            lr = cfg.lr * scale * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            c = c - lr * mh / (vh.sqrt() + eps * scale)

    def curve(ts: Tensor) -> Tensor:
        return _bezier(a, c, b, ts)

    ts, vals = profile_curve(obj, curve, prof, like=a)
    return _result(
        "bezier", ts, vals, obj.num_loss_evals - e0, obj.num_grad_evals - g0, c.unsqueeze(0)
    )


# ---------------------------------------------------------------------- NEB
def _improved_tangent(x: Tensor, vals: Tensor) -> Tensor:
    """Henkelman & Jónsson (2000) tangent at interior images of the chain ``x``."""
    tp = x[2:] - x[1:-1]
    tm = x[1:-1] - x[:-2]
    vp = vals[2:] - vals[1:-1]
    vm = vals[1:-1] - vals[:-2]
    up = (vp > 0) & (vm > 0)
    down = (vp < 0) & (vm < 0)
    dmax = torch.maximum(vp.abs(), vm.abs())
    dmin = torch.minimum(vp.abs(), vm.abs())
    higher_next = (vals[2:] > vals[:-2]).unsqueeze(1)
    mixed = torch.where(
        higher_next,
        tp * dmax.unsqueeze(1) + tm * dmin.unsqueeze(1),
        tp * dmin.unsqueeze(1) + tm * dmax.unsqueeze(1),
    )
    tau = torch.where(up.unsqueeze(1), tp, torch.where(down.unsqueeze(1), tm, mixed))
    # A flat chain (all differences zero) falls back to the bisector.
    bis = tp / tp.norm(dim=1, keepdim=True).clamp_min(1e-300) + tm / tm.norm(
        dim=1, keepdim=True
    ).clamp_min(1e-300)
    norm = tau.norm(dim=1, keepdim=True)
    tau = torch.where(norm > 0, tau, bis)
    return tau / tau.norm(dim=1, keepdim=True).clamp_min(1e-300)


def _relax(
    obj: Objective,
    chain: Tensor,
    end_vals: tuple[Tensor, Tensor],
    cfg: NEBConfig,
    lr0: Tensor,
    climb: bool,
    climb_margin: Tensor,
) -> Tensor:
    """One NEB cycle: Adam steps of the interior images under the NEB force."""
    x = chain.clone()
    inner = x[1:-1].clone()
    m = torch.zeros_like(inner)
    v = torch.zeros_like(inner)
    beta1, beta2 = 0.9, 0.999
    eps = 1e-12 * lr0.clamp_min(1e-300) / max(cfg.lr, 1e-300)
    for step in range(cfg.steps):
        vals_in, g = obj.values_and_grads(inner)
        full = torch.cat([x[:1], inner, x[-1:]])
        vals = torch.cat([end_vals[0].reshape(1), vals_in, end_vals[1].reshape(1)])
        tau = _improved_tangent(full, vals)
        g_par = (g * tau).sum(dim=1, keepdim=True)
        g_perp = g - g_par * tau
        seg = (full[1:] - full[:-1]).norm(dim=1)
        mean_seg = seg.mean().clamp_min(1e-300)
        kappa = cfg.spring * g_perp.norm(dim=1).mean() / mean_seg
        spring = kappa * (seg[1:] - seg[:-1]).unsqueeze(1) * tau
        force = -g_perp + spring
        if climb:
            top = torch.argmax(vals_in)
            climb_force = -g + 2 * g_par * tau
            is_top = (torch.arange(inner.shape[0], device=inner.device) == top).unsqueeze(1)
            # Climb only over a real barrier, never along a flat valley floor.
            is_top = is_top & (vals_in[top] > torch.maximum(*end_vals) + climb_margin)
            force = torch.where(is_top, climb_force, force)
        step_dir = -force
        m = beta1 * m + (1 - beta1) * step_dir
        v = beta2 * v + (1 - beta2) * step_dir * step_dir
        mh = m / (1 - beta1 ** (step + 1))
        vh = v / (1 - beta2 ** (step + 1))
        lr = lr0 * 0.5 * (1 + math.cos(math.pi * step / max(cfg.steps, 1)))
        inner = inner - lr * mh / (vh.sqrt() + eps)
    return torch.cat([x[:1], inner, x[-1:]])


def _chain_curve(chain: Tensor) -> tuple[Curve, Tensor]:
    """Arc-length parametrisation of the polyline through ``chain``; pivot coordinates."""
    seg = (chain[1:] - chain[:-1]).norm(dim=1)
    total = seg.sum()
    cum = torch.cat([torch.zeros(1, dtype=chain.dtype, device=chain.device), torch.cumsum(seg, 0)])
    if bool(total > 0):
        knots = cum / total
    else:
        knots = torch.linspace(0, 1, chain.shape[0], dtype=chain.dtype, device=chain.device)
    # Strictly increasing knots (zero-length segments get a tiny width).
    knots = torch.cummax(
        knots + 1e-12 * torch.arange(knots.shape[0], dtype=knots.dtype, device=knots.device), 0
    ).values
    knots = knots / knots[-1]

    def curve(ts: Tensor) -> Tensor:
        idx = torch.searchsorted(knots, ts.contiguous(), right=True) - 1
        idx = idx.clamp(0, chain.shape[0] - 2)
        t0, t1 = knots[idx], knots[idx + 1]
        w = ((ts - t0) / (t1 - t0)).clamp(0, 1).unsqueeze(1)
        return chain[idx] * (1 - w) + chain[idx + 1] * w

    return curve, knots


def _spline_curve(chain: Tensor, knots: Tensor) -> Curve:
    """C1 cubic Hermite curve through the pivots at parameters ``knots``.

    Tangents by finite differences over the neighbouring knots (one-sided at the ends),
    as in a Catmull-Rom spline with chord-length parametrisation.
    """
    n = chain.shape[0]
    m = torch.empty_like(chain)
    m[1:-1] = (chain[2:] - chain[:-2]) / (knots[2:] - knots[:-2]).unsqueeze(1)
    m[0] = (chain[1] - chain[0]) / (knots[1] - knots[0])
    m[-1] = (chain[-1] - chain[-2]) / (knots[-1] - knots[-2])

    def curve(ts: Tensor) -> Tensor:
        idx = (torch.searchsorted(knots, ts.contiguous(), right=True) - 1).clamp(0, n - 2)
        t0, t1 = knots[idx], knots[idx + 1]
        h = (t1 - t0).unsqueeze(1)
        u = ((ts - t0) / (t1 - t0)).clamp(0, 1).unsqueeze(1)
        h00 = 2 * u**3 - 3 * u**2 + 1
        h10 = u**3 - 2 * u**2 + u
        h01 = -2 * u**3 + 3 * u**2
        h11 = u**3 - u**2
        return h00 * chain[idx] + h10 * h * m[idx] + h01 * chain[idx + 1] + h11 * h * m[idx + 1]

    return curve


def neb_path(
    obj: Objective,
    a: Tensor,
    b: Tensor,
    config: NEBConfig | None = None,
    profile: LinearConfig | None = None,
    *,
    seed: int = 0,
) -> PathResult:
    """AutoNEB path between ``a`` and ``b`` (Draxler et al. 2018, section 3).

    The initial chain is the straight segment with ``images`` equally spaced interior
    pivots, offset by a tiny seeded perturbation (``1e-3`` of the RMS endpoint
    distance) so that a chain lying on a symmetry axis can leave it. Each cycle:
    ``steps`` NEB steps; then the straight segments between neighbouring pivots are
    evaluated at ``segment_points`` interior points, and up to ``insert_per_cycle`` new
    pivots are inserted at the highest interior points of the segments that rise
    highest above both their ends. The final chain is evaluated on the arc-length grid
    of ``profile`` (pivots included) and zoomed around its peak, both as a polyline and
    as a cubic Hermite curve through the pivots; the lower of the two is returned
    (``extra["interpolation"]``).
    """
    _check_pair(a, b)
    cfg = config or NEBConfig()
    prof = profile or LinearConfig()
    e0, g0 = obj.num_loss_evals, obj.num_grad_evals
    scale = _rms(b - a)
    ts0 = torch.linspace(0, 1, cfg.images + 2, dtype=a.dtype, device=a.device)
    chain = a.unsqueeze(0) + ts0.unsqueeze(1) * (b - a).unsqueeze(0)
    end_vals = (obj.value(a), obj.value(b))
    if bool(scale > 0):
        # Height scale of the problem: how far the straight chain rises above its ends.
        rise = (obj.values(chain).max() - torch.minimum(*end_vals)).clamp_min(0)
        climb_margin = cfg.insert_tol * rise
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        noise = torch.randn(cfg.images, a.shape[0], generator=gen, dtype=a.dtype).to(a.device)
        chain[1:-1] += 1e-3 * scale * noise
        inserted_total = 0
        for cycle in range(cfg.cycles):
            lr0 = cfg.lr * scale * (0.5**cycle)
            chain = _relax(
                obj,
                chain,
                end_vals,
                cfg,
                lr0,
                climb=cfg.climb and cycle > 0,
                climb_margin=climb_margin,
            )
            if cycle == cfg.cycles - 1 or chain.shape[0] >= cfg.max_pivots:
                continue
            # AutoNEB: look for the highest residual on the straight segments.
            s = cfg.segment_points
            w = torch.arange(1, s + 1, dtype=a.dtype, device=a.device) / (s + 1)
            pts = chain[:-1].unsqueeze(1) + w.view(1, -1, 1) * (chain[1:] - chain[:-1]).unsqueeze(1)
            seg_vals = obj.values(pts.reshape(-1, a.shape[0])).reshape(-1, s)
            piv_vals = obj.values(chain)
            ends_max = torch.maximum(piv_vals[:-1], piv_vals[1:])
            seg_max, seg_arg = seg_vals.max(dim=1)
            excess = seg_max - ends_max
            span = (torch.maximum(seg_max.max(), piv_vals.max()) - piv_vals.min()).clamp_min(0)
            room = cfg.max_pivots - chain.shape[0]
            n_ins = min(cfg.insert_per_cycle, room)
            order = torch.argsort(excess, descending=True)[:n_ins].cpu().tolist()
            ok = (excess > cfg.insert_tol * span).cpu().tolist()
            chosen = sorted((k for k in order if ok[k]), reverse=True)
            for k in chosen:  # insert from the end so earlier indices stay valid
                new = pts[k, int(seg_arg[k])].unsqueeze(0)
                chain = torch.cat([chain[: k + 1], new, chain[k + 1 :]])
            inserted_total += len(chosen)
    else:
        inserted_total = 0
    curve, knots = _chain_curve(chain)
    ts, vals = profile_curve(obj, curve, prof, like=a, extra_ts=knots)
    interpolation = "polyline"
    if chain.shape[0] > 2:
        # The cubic Hermite curve through the same pivots is another continuous path;
        # on a curved valley floor it stays much closer to it than the chords do.
        s_curve = _spline_curve(chain, knots)
        ts_s, vals_s = profile_curve(obj, s_curve, prof, like=a, extra_ts=knots)
        if bool(vals_s.max() < vals.max()):
            ts, vals, interpolation = ts_s, vals_s, "cubic"
    return _result(
        "neb",
        ts,
        vals,
        obj.num_loss_evals - e0,
        obj.num_grad_evals - g0,
        chain,
        interpolation=interpolation,
        pivots=int(chain.shape[0]),
        inserted=inserted_total,
    )
