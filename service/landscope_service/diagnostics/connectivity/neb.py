"""Nudged elastic band with adaptive pivot insertion, for many pairs at once.

The nudged elastic band (Jónsson, Mills & Jacobsen 1998; improved tangent and climbing
image of Henkelman & Jónsson 2000; Henkelman, Uberuaga & Jónsson 2000) in the AutoNEB
form of Draxler et al. 2018 ("Essentially No Barriers in Neural Network Energy
Landscape", section 3): the path is a chain of pivots; each cycle relaxes the interior
pivots under the NEB force, then evaluates the straight segments between neighbouring
pivots and inserts new pivots where a segment rises most above its ends (where the band
is still high), so resolution goes where the barrier is. The path reported is the
polyline or the C1 cubic Hermite curve through the pivots, whichever has the lower
certified maximum (:mod:`.profile`): a genuine continuous path.

NEB force on interior image ``k`` with unit tangent ``tau_k`` (improved tangent):

    F_k = -(grad f(x_k) - (grad f(x_k) . tau_k) tau_k)
          + kappa (|x_{k+1} - x_k| - |x_k - x_{k-1}|) tau_k,

and for the climbing (highest) image ``F = -grad f + 2 (grad f . tau) tau`` (only when
it rises above both ends by more than ``insert_tol`` times the rise of the initial
straight chain: on a flat valley floor there is no saddle to climb to). Steps are taken
with Adam on ``-F`` under a cosine-decayed learning rate relative to the per-coordinate
RMS distance ``|b - a| / sqrt(P)``; ``kappa`` is relative to the mean perpendicular
force per unit segment length, so the defaults are scale-free.

**One batch.** The chains of all pairs given to :func:`neb_paths` are relaxed together:
the images of every chain are stacked into one ``(pairs x images, P)`` batch and the
objective evaluates it in one vectorised call (``torch.func.vmap`` over the stacked
parameters for networks, broadcasting for analytic functions); all chains gain the same
number of pivots per cycle so the stack stays rectangular. A pair whose band is already
below its ``target`` (a level under which a lower barrier could change nothing, given by
the caller) leaves the batch after that cycle, and so does a pair whose band stopped
falling (``converge_tol``). No host synchronisation happens inside a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .objective import Objective
from .profile import (
    Curve,
    HermiteCurve,
    LinearConfig,
    PathResult,
    PolylineCurve,
    certify_profiles,
    chain_knots,
    result_from,
)

__all__ = ["NEBConfig", "neb_path", "neb_paths"]


@dataclass(frozen=True)
class NEBConfig:
    """Nudged elastic band with adaptive pivot insertion (Draxler et al. 2018).

    Attributes:
        images: interior pivots of the initial (straight) chain.
        cycles: relax-then-insert cycles.
        steps: Adam steps per cycle.
        lr: learning rate relative to the RMS per-coordinate endpoint distance; it
            decays with a cosine within each cycle and by ``0.7`` from cycle to cycle.
        spring: spring constant relative to the mean perpendicular force per unit
            segment length.
        climb: use a climbing image from the second cycle on.
        max_pivots: largest number of pivots, endpoints included.
        insert_per_cycle: pivots inserted per cycle (where the segments rise most above
            their ends; the longest segments when none rises above ``insert_tol``).
        segment_points: interior points per segment when looking for the highest
            residual.
        insert_tol: a segment counts as rising when it rises above both its ends by more
            than ``insert_tol`` times the loss range along the chain.
        converge_tol: a chain whose band maximum fell by at most ``converge_tol`` times
            its excess over the higher end during a cycle has converged and leaves the
            batch (0: never).
    """

    images: int = 7
    cycles: int = 6
    steps: int = 100
    lr: float = 0.05
    spring: float = 1.0
    climb: bool = True
    max_pivots: int = 33
    insert_per_cycle: int = 4
    segment_points: int = 5
    insert_tol: float = 1e-3
    converge_tol: float = 1e-3

    def __post_init__(self) -> None:
        if self.images < 1 or self.cycles < 1 or self.steps < 0:
            raise ValueError("NEB: images >= 1, cycles >= 1 and steps >= 0 are required.")
        if not self.lr > 0 or self.spring < 0 or self.max_pivots < self.images + 2:
            raise ValueError("NEB: lr > 0, spring >= 0 and max_pivots >= images + 2 required.")
        if self.converge_tol < 0:
            raise ValueError(f"NEB: converge_tol must be >= 0, got {self.converge_tol}.")
        if self.insert_per_cycle < 0 or self.segment_points < 1:
            raise ValueError("NEB: insert_per_cycle >= 0 and segment_points >= 1 required.")


def improved_tangent(x: Tensor, vals: Tensor) -> Tensor:
    """Henkelman & Jónsson (2000) unit tangents at the interior images of chains.

    Args:
        x: chains ``(B, n, P)``.
        vals: losses ``(B, n)``.

    Returns:
        ``(B, n - 2, P)``.
    """
    tp = x[:, 2:] - x[:, 1:-1]
    tm = x[:, 1:-1] - x[:, :-2]
    vp = vals[:, 2:] - vals[:, 1:-1]
    vm = vals[:, 1:-1] - vals[:, :-2]
    up = ((vp > 0) & (vm > 0)).unsqueeze(-1)
    down = ((vp < 0) & (vm < 0)).unsqueeze(-1)
    dmax = torch.maximum(vp.abs(), vm.abs()).unsqueeze(-1)
    dmin = torch.minimum(vp.abs(), vm.abs()).unsqueeze(-1)
    higher_next = (vals[:, 2:] > vals[:, :-2]).unsqueeze(-1)
    mixed = torch.where(higher_next, tp * dmax + tm * dmin, tp * dmin + tm * dmax)
    tau = torch.where(up, tp, torch.where(down, tm, mixed))
    tiny = 1e-300
    bis = tp / tp.norm(dim=-1, keepdim=True).clamp_min(tiny) + tm / tm.norm(
        dim=-1, keepdim=True
    ).clamp_min(tiny)
    norm = tau.norm(dim=-1, keepdim=True)
    tau = torch.where(norm > 0, tau, bis)
    return tau / tau.norm(dim=-1, keepdim=True).clamp_min(tiny)


def _relax(
    obj: Objective,
    chain: Tensor,
    end_vals: Tensor,
    cfg: NEBConfig,
    lr0: Tensor,
    climb: bool,
    climb_margin: Tensor,
) -> Tensor:
    """One NEB cycle for a stack of chains ``(B, n, P)``; ``end_vals`` is ``(B, 2)``."""
    bsz, n, p = chain.shape
    inner = chain[:, 1:-1].clone()
    first, last = chain[:, :1], chain[:, -1:]
    m = torch.zeros_like(inner)
    v = torch.zeros_like(inner)
    beta1, beta2 = 0.9, 0.999
    eps = (1e-12 * lr0.clamp_min(1e-300) / max(cfg.lr, 1e-300)).view(-1, 1, 1)
    lr0v = lr0.view(-1, 1, 1)
    ends_max = end_vals.max(dim=1).values
    idx = torch.arange(n - 2, device=chain.device)
    for step in range(cfg.steps):
        vals_in, g = obj.values_and_grads(inner.reshape(-1, p))
        vals_in = vals_in.reshape(bsz, n - 2)
        g = g.reshape(bsz, n - 2, p)
        full = torch.cat([first, inner, last], dim=1)
        vals = torch.cat([end_vals[:, :1], vals_in, end_vals[:, 1:]], dim=1)
        tau = improved_tangent(full, vals)
        g_par = (g * tau).sum(dim=-1, keepdim=True)
        g_perp = g - g_par * tau
        seg = (full[:, 1:] - full[:, :-1]).norm(dim=-1)
        mean_seg = seg.mean(dim=1).clamp_min(1e-300)
        kappa = cfg.spring * g_perp.norm(dim=-1).mean(dim=1) / mean_seg
        spring = kappa.view(-1, 1, 1) * (seg[:, 1:] - seg[:, :-1]).unsqueeze(-1) * tau
        force = -g_perp + spring
        if climb:
            top_val, top = vals_in.max(dim=1)
            is_top = (idx.unsqueeze(0) == top.unsqueeze(1)) & (
                top_val > ends_max + climb_margin
            ).unsqueeze(1)
            force = torch.where(is_top.unsqueeze(-1), -g + 2 * g_par * tau, force)
        step_dir = -force
        m = beta1 * m + (1 - beta1) * step_dir
        v = beta2 * v + (1 - beta2) * step_dir * step_dir
        mh = m / (1 - beta1 ** (step + 1))
        vh = v / (1 - beta2 ** (step + 1))
        lr = lr0v * 0.5 * (1 + math.cos(math.pi * step / max(cfg.steps, 1)))
        inner = inner - lr * mh / (vh.sqrt() + eps)
    return torch.cat([first, inner, last], dim=1)


def _check_pairs(pairs: Sequence[tuple[Tensor, Tensor]]) -> None:
    for a, b in pairs:
        if a.ndim != 1 or a.shape != b.shape:
            raise ValueError(
                f"Shape mismatch: expected two vectors of equal shape (P,), got "
                f"{tuple(a.shape)} and {tuple(b.shape)}."
            )


def neb_paths(
    obj: Objective,
    pairs: Sequence[tuple[Tensor, Tensor]],
    config: NEBConfig | None = None,
    profile: LinearConfig | None = None,
    *,
    seeds: Sequence[int] | None = None,
    targets: Sequence[float | None] | None = None,
    check: Callable[[], None] | None = None,
) -> list[PathResult]:
    """Adaptive NEB paths between the two points of each pair, relaxed as one batch.

    The initial chain of a pair is its straight segment with ``images`` equally spaced
    interior pivots, offset by a tiny seeded perturbation (``1e-3`` of the RMS endpoint
    distance) so that a chain lying on a symmetry axis can leave it. Each cycle:
    ``steps`` NEB steps of all active chains at once; then every segment is sampled at
    ``segment_points`` interior points and ``insert_per_cycle`` pivots are inserted at
    the highest points of the segments rising most above their ends. A pair whose band
    (pivots and segment samples) is at or below its target leaves the batch. The final
    chains are evaluated as polyline and cubic Hermite curve with certified maxima
    (:func:`.profile.certify_profiles`, all curves in one batch); the lower certified
    barrier wins (``extra["interpolation"]``).

    Args:
        obj: the objective.
        pairs: ``(a, b)`` endpoint vectors of equal shape ``(P,)``.
        config: NEB settings.
        profile: sampling and resolution of the final profiles.
        seeds: one seed per pair for the initial perturbation (default: 0, 1, ...).
        targets: per pair, a level under which a lower barrier is of no use (None: none).
        check: called before every cycle (cancellation).

    Returns:
        One :class:`PathResult` per pair, in order.
    """
    if not pairs:
        return []
    _check_pairs(pairs)
    cfg = config or NEBConfig()
    prof = profile or LinearConfig()
    nb = len(pairs)
    sd = list(seeds) if seeds is not None else list(range(nb))
    tg = list(targets) if targets is not None else [None] * nb
    if len(sd) != nb or len(tg) != nb:
        raise ValueError(f"Expected {nb} seeds and targets, got {len(sd)} and {len(tg)}.")
    a = torch.stack([x for x, _ in pairs])
    b = torch.stack([y for _, y in pairs])
    dt, dev = a.dtype, a.device
    p = a.shape[1]
    grad_evals = [0] * nb
    loss_evals = [0] * nb
    scale = (b - a).pow(2).mean(dim=1).sqrt()
    ts0 = torch.linspace(0, 1, cfg.images + 2, dtype=dt, device=dev)
    chain = a.unsqueeze(1) + ts0.view(1, -1, 1) * (b - a).unsqueeze(1)
    end_vals = obj.values(torch.cat([a, b])).reshape(2, nb).T.contiguous()
    init_vals = obj.values(chain[:, 1:-1].reshape(-1, p)).reshape(nb, -1)
    for k in range(nb):
        loss_evals[k] += 2 + cfg.images
    rise = (init_vals.max(dim=1).values - end_vals.min(dim=1).values).clamp_min(0)
    climb_margin = cfg.insert_tol * rise
    noise = torch.stack(
        [
            torch.randn(
                cfg.images, p, generator=torch.Generator().manual_seed(int(s)), dtype=dt
            )
            for s in sd
        ]
    ).to(dev)
    chain[:, 1:-1] += 1e-3 * scale.view(-1, 1, 1) * noise
    final: list[Tensor | None] = [None] * nb
    inserted = [0] * nb
    prev_band: dict[int, float] = {}
    ends_host = end_vals.max(dim=1).values.cpu().tolist()
    # Identical endpoints: nothing to relax.
    active = [k for k in range(nb) if bool(scale[k] > 0)]
    for k in range(nb):
        if k not in active:
            final[k] = chain[k]
    for cycle in range(cfg.cycles):
        if not active:
            break
        if check is not None:
            check()
        idx = torch.tensor(active, device=dev)
        sub = chain[idx] if len(active) < chain.shape[0] else chain
        lr0 = cfg.lr * scale[idx] * (0.7**cycle)
        sub = _relax(
            obj,
            sub,
            end_vals[idx],
            cfg,
            lr0,
            climb=cfg.climb and cycle > 0,
            climb_margin=climb_margin[idx],
        )
        n_in = sub.shape[1] - 2
        for k in active:
            grad_evals[k] += cfg.steps * n_in
        last = cycle == cfg.cycles - 1
        if last:
            for r, k in enumerate(active):
                final[k] = sub[r]
            break
        # The band: pivots and segment samples of every active chain, one call.
        s = cfg.segment_points
        w = torch.arange(1, s + 1, dtype=dt, device=dev) / (s + 1)
        nseg = sub.shape[1] - 1
        step_vec = (sub[:, 1:] - sub[:, :-1]).unsqueeze(2)
        pts = sub[:, :-1].unsqueeze(2) + w.view(1, 1, -1, 1) * step_vec
        allv = obj.values(torch.cat([pts.reshape(-1, p), sub.reshape(-1, p)]))
        nb_a = sub.shape[0]
        seg_vals = allv[: nb_a * nseg * s].reshape(nb_a, nseg, s)
        piv_vals = allv[nb_a * nseg * s :].reshape(nb_a, nseg + 1)
        for k in active:
            loss_evals[k] += nseg * s + nseg + 1
        band_max = torch.maximum(seg_vals.amax(dim=(1, 2)), piv_vals.max(dim=1).values)
        seg_max, seg_arg = seg_vals.max(dim=2)
        ends_max = torch.maximum(piv_vals[:, :-1], piv_vals[:, 1:])
        excess = seg_max - ends_max
        span = (band_max - piv_vals.min(dim=1).values).clamp_min(0)
        rising = excess > cfg.insert_tol * span.unsqueeze(1)
        seg_len = (sub[:, 1:] - sub[:, :-1]).norm(dim=-1)
        # Rising segments first (by excess), then the longest ones.
        key = torch.where(rising, 1.0 + excess / span.clamp_min(1e-300).unsqueeze(1), 0.0)
        key = key + seg_len / seg_len.max(dim=1, keepdim=True).values.clamp_min(1e-300) * 0.5
        room = cfg.max_pivots - sub.shape[1]
        n_ins = min(cfg.insert_per_cycle, room, nseg)
        band_host = band_max.cpu().tolist()
        keep: list[int] = []
        for r, k in enumerate(active):
            t = tg[k]
            excess = band_host[r] - ends_host[k]
            stalled = (
                k in prev_band
                and prev_band[k] - band_host[r] <= cfg.converge_tol * max(excess, 0.0)
            )
            prev_band[k] = band_host[r]
            if (t is not None and band_host[r] <= t) or stalled:
                final[k] = sub[r]
            else:
                keep.append(r)
        if n_ins > 0 and keep:
            order = torch.argsort(key, dim=1, descending=True)[:, :n_ins].cpu().tolist()
            args = seg_arg.cpu().tolist()
            rows = []
            for r in keep:
                chosen = sorted(order[r])
                pieces = []
                prev = 0
                for j in chosen:
                    pieces.append(sub[r, prev : j + 1])
                    pieces.append(pts[r, j, args[r][j]].unsqueeze(0))
                    prev = j + 1
                pieces.append(sub[r, prev:])
                rows.append(torch.cat(pieces))
                inserted[active[r]] += n_ins
            new_sub = torch.stack(rows)
        else:
            new_sub = sub[keep] if keep else sub[:0]
        new_active = [active[r] for r in keep]
        if new_active:
            chain = torch.zeros(
                nb, new_sub.shape[1], p, dtype=dt, device=dev
            )  # only active rows are read
            chain[torch.tensor(new_active, device=dev)] = new_sub
        active = new_active
    # Certified profiles: polyline and cubic curve of every pair, one batch.
    curves: list[Curve] = []
    owners: list[tuple[int, str]] = []
    for k in range(nb):
        ch = _done(final[k])
        knots = chain_knots(ch)
        curves.append(PolylineCurve(ch, knots))
        owners.append((k, "polyline"))
        if ch.shape[0] > 2:
            curves.append(HermiteCurve(ch, knots))
            owners.append((k, "cubic"))
    certs = certify_profiles(
        obj, curves, prof, like=a, targets=[tg[k] for k, _ in owners]
    )
    best: dict[int, tuple[str, int]] = {}
    for c_idx, (k, kind) in enumerate(owners):
        grad_evals[k] += int(certs[c_idx].ts.shape[0])
        if k not in best or certs[c_idx].barrier < certs[best[k][1]].barrier:
            best[k] = (kind, c_idx)
    out: list[PathResult] = []
    for k in range(nb):
        kind, c_idx = best[k]
        ch = _done(final[k])
        out.append(
            result_from(
                "neb",
                certs[c_idx],
                loss_evals[k],
                grad_evals[k],
                ch,
                interpolation=kind,
                pivots=int(ch.shape[0]),
                inserted=inserted[k],
            )
        )
    return out


def _done(chain: Tensor | None) -> Tensor:
    if chain is None:
        raise RuntimeError("NEB: a chain was left without a final state.")
    return chain


def neb_path(
    obj: Objective,
    a: Tensor,
    b: Tensor,
    config: NEBConfig | None = None,
    profile: LinearConfig | None = None,
    *,
    seed: int = 0,
    target: float | None = None,
) -> PathResult:
    """:func:`neb_paths` for one pair (Draxler et al. 2018, section 3)."""
    return neb_paths(obj, [(a, b)], config, profile, seeds=[seed], targets=[target])[0]
