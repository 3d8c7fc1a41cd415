"""Batched evaluation of the loss on a grid of points ``origin + alpha d1 + beta d2``.

Many grid points go through one forward pass: the parameter sets of ``K`` points are
stacked (``(K, *shape)`` per parameter) and the model runs under
:func:`torch.func.vmap` of :func:`torch.func.functional_call`, so a linear layer becomes
one batched matrix product for all ``K`` points. ``K`` is chosen to fill a memory budget
(the stacked parameters plus the activations of one data batch per point), and the loss is
accumulated over the data batches of :meth:`Problem.batches`, so it is always the
full-data mean loss.

First-layer shortcut: when the model is a ``torch.nn.Sequential`` whose first module is a
``Linear`` or ``Conv1d/2d/3d`` layer, that layer's output on the fixed data is affine in
its parameters, ``F(x; W0 + a D1 + b D2) = F(x; W0) + a F(x; D1) + b F(x; D2)`` (bias
included, as ``F`` is jointly linear in weight and bias). It is computed three times per
data batch instead of once per grid point; the rest of the network runs per point. For
the wide first layers of MLPs on images this removes most of the work; the values equal
the direct evaluation up to floating-point rounding (a unit test compares both).

Models with buffers (batch norm) run point by point (``vmap`` cannot update running
statistics); batch statistics are those of each data batch, as the model computes them.

Work is split into *pieces* of grid rows (:func:`rows_piece`), which the runner fans out
through its executor; progress counts grid points and never goes backwards, and the
cancellation flag is checked before every pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from ..monitor import Monitor
from ..problem import Params, Problem, loss_value, unflatten

__all__ = ["CPU_MEMORY_BYTES", "DEFAULT_MEMORY_BYTES", "evaluate_points", "points_per_pass",
           "rows_piece"]

DEFAULT_MEMORY_BYTES = 256 << 20
"""Memory budget of one batched pass on an accelerator (stacked parameters and
activations)."""

CPU_MEMORY_BYTES = 16 << 20
"""Budget on the CPU: batching points saves no arithmetic there, only per-call overhead,
while passes larger than the caches stream every elementwise operation through memory;
a few points per pass is fastest (measured on the benchmark's MLP)."""

_AFFINE_FIRST = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _activation_numel(problem: Problem, x1: Tensor) -> int:
    """Numbers produced per sample by the model's leaf modules (one forward on 1 sample)."""
    total = [0]

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        if isinstance(out, Tensor):
            total[0] += int(out.numel())

    handles = [m.register_forward_hook(hook) for m in problem.model.modules()
               if not list(m.children())]
    try:
        with torch.no_grad():
            problem.forward({k: v.detach() for k, v in problem.params.items()}, x1)
    finally:
        for h in handles:
            h.remove()
    return max(total[0], 1)


def points_per_pass(problem: Problem, memory_bytes: int | None = None) -> int:
    """How many grid points one batched pass evaluates within ``memory_bytes``
    (default :data:`CPU_MEMORY_BYTES` on the CPU, :data:`DEFAULT_MEMORY_BYTES` elsewhere).

    Per point: twice the parameters (the stacked set and a temporary) and twice the
    activations of one data batch (outputs and the temporaries of the activations).
    """
    itemsize = torch.empty((), dtype=problem.dtype).element_size()
    nb = problem.num_samples if problem.batch_size is None else min(problem.batch_size,
                                                                    problem.num_samples)
    if memory_bytes is None:
        memory_bytes = (CPU_MEMORY_BYTES if problem.device.type == "cpu"
                        else DEFAULT_MEMORY_BYTES)
    act = _activation_numel(problem, problem.x[:1])
    per_point = itemsize * (2 * problem.num_params + 2 * nb * act)
    return max(1, int(memory_bytes // per_point))


def _batched(fn: Callable[..., tuple[Tensor, Tensor]], k: int, mapped: int
             ) -> Callable[..., tuple[Tensor, Tensor]]:
    """``vmap(fn)`` over the first ``mapped`` arguments; for a single point, a plain call
    on the squeezed arguments (``vmap`` costs per-call overhead and gains nothing there)."""
    if k > 1:
        return vmap(fn, in_dims=(0,) * mapped + (None,) * (3 - mapped))  # type: ignore[no-any-return]

    def one(*args: Any) -> tuple[Tensor, Tensor]:
        head = [({n: t[0] for n, t in a.items()} if isinstance(a, dict) else a[0])
                for a in args[:mapped]]
        lo, ac = fn(*head, *args[mapped:])
        return lo.unsqueeze(0), ac.unsqueeze(0)

    return one


class _Evaluator:
    """Evaluates loss (and accuracy) at stacked points; holds the first-layer cache."""

    def __init__(self, problem: Problem, origin: Tensor, vectors: list[Tensor],
                 accuracy: bool) -> None:
        self.problem = problem
        self.like = {k: v.detach() for k, v in problem.params.items()}
        self.origin = origin.to(device=problem.device, dtype=problem.dtype)
        self.vectors = [v.to(device=problem.device, dtype=problem.dtype) for v in vectors]
        self.accuracy = accuracy
        self.vectorized = not problem.buffers
        self.head_key: str | None = None
        self.head_names: list[str] = []
        model = problem.model
        if (self.vectorized and isinstance(model, nn.Sequential) and len(model) > 1
                and isinstance(model[0], _AFFINE_FIRST)):
            key = next(iter(model._modules))
            names = [f"{key}.{n}" for n, _ in model[0].named_parameters()]
            if names and all(n in self.like for n in names):
                self.head_key = key
                self.head_names = names
        self.tail_names = [k for k in self.like if k not in self.head_names]
        self.batches = list(problem.batches())
        self._cache: dict[int, tuple[Tensor, tuple[int, ...]]] = {}
        self.matrix = torch.stack(self.vectors)  # (dims, P)
        self.slices: dict[str, tuple[int, int]] = {}
        offset = 0
        for n, v in self.like.items():
            self.slices[n] = (offset, offset + int(v.numel()))
            offset += int(v.numel())

    @property
    def shortcut(self) -> bool:
        return self.head_key is not None

    def _head_outputs(self, b: int, xb: Tensor) -> tuple[Tensor, tuple[int, ...]]:
        """``F(x; origin)``, ``F(x; d1)``, ``F(x; d2)`` of the first layer on batch ``b``,
        stacked and flattened, ``(1 + dims, numel of one output)``, and the output shape."""
        if b in self._cache:
            return self._cache[b]
        if self.head_key is None:
            raise RuntimeError("The first-layer shortcut is not available for this model.")
        head = self.problem.model[0]  # type: ignore[index]
        outs = []
        with torch.no_grad():
            for flat in [self.origin, *self.vectors]:
                p = unflatten(flat, self.like)
                local = {n[len(self.head_key) + 1:]: p[n] for n in self.head_names}
                outs.append(functional_call(head, local, (xb,)))
        self._cache[b] = (torch.stack([o.reshape(-1) for o in outs]), tuple(outs[0].shape))
        return self._cache[b]

    def _stacked(self, coords: Tensor, names: list[str]) -> Params:
        """Parameters of every point, ``(K, *shape)`` per name: one ``addmm`` per name,
        ``origin + coords @ [d1; d2]``."""
        k = coords.shape[0]
        out: Params = {}
        for n in names:
            a, b = self.slices[n]
            shape = self.like[n].shape
            out[n] = torch.addmm(self.origin[a:b].unsqueeze(0), coords,
                                 self.matrix[:, a:b]).reshape(k, *shape)
        return out

    def _metrics(self, out: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
        loss = loss_value(self.problem.loss, out, yb)
        if self.accuracy:
            acc = (out.argmax(dim=-1) == yb).to(out.dtype).mean()
        else:
            acc = torch.zeros((), dtype=out.dtype, device=out.device)
        return loss, acc

    def __call__(self, coords: Tensor) -> tuple[Tensor, Tensor]:
        """Full-data loss and accuracy at ``coords`` (``(K, dims)``): two ``(K,)`` tensors."""
        coords = coords.to(device=self.problem.device, dtype=self.problem.dtype)
        k = coords.shape[0]
        loss = torch.zeros(k, dtype=self.problem.dtype, device=self.problem.device)
        acc = torch.zeros_like(loss)
        model, buffers = self.problem.model, self.problem.buffers
        with torch.no_grad():
            if not self.vectorized:
                stacked = self._stacked(coords, list(self.like))
                for i in range(k):
                    p = {n: t[i] for n, t in stacked.items()}
                    for xb, yb, w in self.batches:
                        out = functional_call(model, (p, buffers), (xb,))
                        lo, ac = self._metrics(out, yb)
                        loss[i] += w * lo
                        acc[i] += w * ac
                return loss, acc
            if self.shortcut:
                tail = model[1:]  # type: ignore[index]
                stacked = self._stacked(coords, self.tail_names)

                def f_tail(p: Params, z: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
                    return self._metrics(functional_call(tail, p, (z,)), yb)

                run_tail: Callable[..., tuple[Tensor, Tensor]] = _batched(f_tail, k, 2)
                for b, (xb, yb, w) in enumerate(self.batches):
                    heads, shape = self._head_outputs(b, xb)
                    # z = F(x; origin) + a F(x; d1) + b F(x; d2), one addmm for K points
                    # (one point on the CPU: two in-place axpys, no copy of the origin term)
                    if k == 1 and self.problem.device.type == "cpu":
                        z = torch.add(heads[0], heads[1], alpha=float(coords[0, 0]))
                        for j in range(2, heads.shape[0]):
                            z.add_(heads[j], alpha=float(coords[0, j - 1]))
                        z = z.unsqueeze(0)
                    else:
                        z = torch.addmm(heads[0].unsqueeze(0), coords, heads[1:])
                    lo, ac = run_tail(stacked, z.reshape(k, *shape), yb)
                    loss += w * lo
                    acc += w * ac
                return loss, acc
            stacked = self._stacked(coords, list(self.like))

            def f(p: Params, xb: Tensor, yb: Tensor) -> tuple[Tensor, Tensor]:
                return self._metrics(functional_call(model, p, (xb,)), yb)

            run: Callable[..., tuple[Tensor, Tensor]] = _batched(f, k, 1)
            for xb, yb, w in self.batches:
                lo, ac = run(stacked, xb, yb)
                loss += w * lo
                acc += w * ac
        return loss, acc


def evaluate_points(problem: Problem, origin: Tensor, vectors: list[Tensor], coords: Tensor,
                    *, accuracy: bool = False, per_pass: int | None = None,
                    monitor: Monitor | None = None, label: str = "",
                    shortcut: bool = True
                    ) -> tuple[Tensor, Tensor | None]:
    """Full-data loss (and accuracy) at ``origin + coords @ vectors``.

    Args:
        problem: model, data and loss (its ``params`` give names, shapes, dtype, device).
        origin: ``(P,)``. vectors: one or two ``(P,)`` directions.
        coords: ``(K, len(vectors))`` coordinates.
        accuracy: also the fraction of samples whose arg-max output is the label
            (cross-entropy only).
        per_pass: points per batched pass; None chooses by :func:`points_per_pass`.
        monitor: progress (``"grid"`` stage, fraction of these ``K`` points) and
            cancellation, checked before every pass.
        label: prefix of the progress message ``"<label>j/K grid points"`` (a piece
            names its rows: pieces may run out of order and on other workers, so a
            message never claims a count of the whole grid).
        shortcut: allow the first-layer shortcut (module docstring).

    Returns:
        ``(loss, accuracy)``: ``(K,)`` float64 CPU tensors; accuracy None unless asked.

    Raises:
        ValueError: on mismatched shapes, or accuracy with a loss other than cross_entropy.
    """
    if accuracy and problem.loss != "cross_entropy":
        raise ValueError(f"accuracy needs loss 'cross_entropy', got {problem.loss!r}.")
    p = problem.num_params
    for v in [origin, *vectors]:
        if tuple(v.shape) != (p,):
            raise ValueError(f"Shape mismatch: expected ({p},), got {tuple(v.shape)}.")
    if coords.ndim != 2 or coords.shape[1] != len(vectors):
        raise ValueError(f"Shape mismatch: coords must be (K, {len(vectors)}), got "
                         f"{tuple(coords.shape)}.")
    monitor = monitor or Monitor()
    ev = _Evaluator(problem, origin, vectors, accuracy)
    if not shortcut:
        ev.head_key = None
        ev.head_names = []
        ev.tail_names = list(ev.like)
    k = int(coords.shape[0])
    step = per_pass or points_per_pass(problem)
    losses: list[Tensor] = []
    accs: list[Tensor] = []
    for start in range(0, k, step):
        monitor.check()
        lo, ac = ev(coords[start : start + step])
        losses.append(lo)
        accs.append(ac)
        done = min(k, start + step)
        monitor.report("grid", done / max(k, 1), f"{label}{done}/{k} grid points")
    loss = torch.cat(losses).to(device="cpu", dtype=torch.float64) if losses else torch.zeros(0)
    acc = torch.cat(accs).to(device="cpu", dtype=torch.float64) if accuracy and accs else None
    return loss, acc


def _rows_label(payload: dict[str, Any]) -> str:
    if "first_row" not in payload or "num_rows" not in payload:
        return ""
    first = int(payload["first_row"]) + 1
    last = first + len(payload["betas"]) - 1
    rows = f"row {first}" if first == last else f"rows {first}-{last}"
    return f"{rows} of {int(payload['num_rows'])}: "


def rows_piece(problem: Problem, payload: dict[str, Any], monitor: Monitor) -> dict[str, Any]:
    """Grid rows as one executor piece.

    Payload: ``origin`` and ``d0`` (and ``d1`` for 2-D) ``(P,)`` tensors; ``alphas``
    (list); ``betas`` (the piece's rows; ``[0.0]`` for 1-D); ``accuracy`` (bool);
    ``per_pass`` (int or None); ``first_row`` and ``num_rows`` (the piece's first row and
    the grid's row count, for the progress message).

    Returns:
        ``loss`` (and ``accuracy``): ``(rows, len(alphas))`` float64 tensors.
    """
    origin = payload["origin"]
    vectors = [payload["d0"]] + ([payload["d1"]] if "d1" in payload else [])
    dev, dt = problem.device, problem.dtype
    alphas = torch.tensor(payload["alphas"], dtype=torch.float64)
    betas = torch.tensor(payload["betas"], dtype=torch.float64)
    if len(vectors) == 2:
        bb, aa = torch.meshgrid(betas, alphas, indexing="ij")
        coords = torch.stack([aa.reshape(-1), bb.reshape(-1)], dim=1)
    else:
        coords = alphas.reshape(-1, 1)
    loss, acc = evaluate_points(
        problem, origin.to(device=dev, dtype=dt), [v.to(device=dev, dtype=dt) for v in vectors],
        coords.to(dt), accuracy=bool(payload.get("accuracy", False)),
        per_pass=payload.get("per_pass"), monitor=monitor, label=_rows_label(payload),
    )
    rows = len(payload["betas"]) if len(vectors) == 2 else 1
    out: dict[str, Any] = {"loss": loss.reshape(rows, -1)}
    if acc is not None:
        out["accuracy"] = acc.reshape(rows, -1)
    return out
