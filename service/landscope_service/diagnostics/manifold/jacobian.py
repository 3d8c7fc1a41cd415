"""The residual map of a squared-loss problem and its Jacobian, in float64.

For parameters ``theta`` in R^P, data ``(x_mu, y_mu)``, ``mu = 1..N``, and ``r`` outputs,
the residual is the stacked vector (sample-major: row ``mu * r + k``)

    R(theta) = vec(H(x_mu; theta) - y_mu)  in R^m,  m = r N,

and PyTorch's mean squared error is ``L(theta) = ||R(theta)||^2 / m``. Its Jacobian
``J = dR/dtheta`` is ``m x P``; at a zero of ``R`` the Hessian of ``L`` is ``(2/m) J^T J``.

Two ways to get at ``J`` are provided:

* dense: ``J`` is formed in row blocks of whole samples with ``vmap(jacrev)`` (per-sample
  Jacobians), memory ``8 m P`` bytes;
* Gram: the ``m x m`` matrix ``K = J J^T`` is accumulated from pairs of row blocks,
  ``K[B, C] = J_B J_C^T``, holding at most two blocks of ``J`` at a time, so memory scales
  with ``m^2`` and the block size, never with ``m P``; products ``J v`` and ``J^T u``
  come from ``jvp`` and ``vjp`` over sample chunks. When ``m > P`` the ``P x P`` normal
  matrix ``J^T J = sum_B J_B^T J_B`` is accumulated instead (the smaller of the two).

Parameters are flattened once (the problem's dict order) because the linear algebra
here is over R^P; the model is still evaluated with ``functional_call`` on views of the
flat vector.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor
from torch.func import functional_call, jacrev, jvp, vjp, vmap

from ..monitor import Monitor
from ..problem import Params, Problem, flatten, unflatten

__all__ = ["GramSide", "ResidualFunction", "rows_per_block"]

GramSide = Literal["rows", "cols"]
"""``"rows"``: ``K = J J^T`` (m x m); ``"cols"``: ``K = J^T J`` (P x P)."""

_BYTES_F64 = 8
_JAC_OVERHEAD = 3.0
"""Peak bytes of a per-sample ``vmap(jacrev)`` block, in units of the block's own size
(the per-parameter gradients and the block they are copied into coexist, plus the
backward's temporaries; measured on tanh MLPs, see benchmarks/manifold_scale.py)."""


def rows_per_block(num_params: int, num_outputs: int, budget_bytes: float) -> int:
    """Samples per Jacobian block so that a block's peak memory fits ``budget_bytes``.

    A block of ``b`` samples holds ``b r P`` float64 numbers, with peak about
    ``_JAC_OVERHEAD`` times that while it is built.

    Args:
        num_params: P.
        num_outputs: r.
        budget_bytes: memory allowed for one block.

    Returns:
        ``max(1, floor(budget / (overhead * 8 r P)))``.
    """
    if num_params < 1 or num_outputs < 1:
        raise ValueError(
            f"Expected num_params >= 1 and num_outputs >= 1, got {num_params}, {num_outputs}."
        )
    per_sample = _JAC_OVERHEAD * _BYTES_F64 * num_outputs * num_params
    return max(1, int(budget_bytes // per_sample))


class ResidualFunction:
    """``R(theta) = vec(H(X; theta) - Y)`` of a squared-loss problem, in float64.

    Holds float64 copies of the model, inputs and targets on the problem's device (the
    problem itself is left untouched, whatever its dtype). ``theta`` is a flat vector in
    the order of ``problem.params``.

    Args:
        problem: a ``Problem`` with ``loss == "mse"`` and floating targets ``(N, r)``
            (or ``(N,)``, read as ``r = 1``).
        chunk_size: samples per chunk for ``jvp``/``vjp`` and per Jacobian sub-block;
            ``None`` sizes it so a sub-block's peak takes a quarter of ``memory_bytes``.
        memory_bytes: working-memory budget (default 1 GiB): a quarter for one Jacobian
            sub-block while it is built, half for the Gram route's outer block (see
            :meth:`gram`).

    Raises:
        ValueError: for a loss other than mse, or targets whose shape does not match.
        TypeError: for non-floating inputs or targets.
    """

    def __init__(
        self,
        problem: Problem,
        *,
        chunk_size: int | None = None,
        memory_bytes: float = 2**30,
    ) -> None:
        if problem.loss != "mse":
            raise ValueError(
                f"The residual map needs the squared loss: expected 'mse', got {problem.loss!r}."
            )
        if not problem.y.is_floating_point():
            raise TypeError(f"Expected floating targets for mse, got {problem.y.dtype}.")
        if not problem.x.is_floating_point():
            raise TypeError(f"Expected floating inputs, got {problem.x.dtype}.")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}.")
        if not memory_bytes > 0:
            raise ValueError(f"memory_bytes must be > 0, got {memory_bytes}.")
        dev = problem.device
        f64 = torch.float64
        self.model = copy.deepcopy(problem.model).to(device=dev, dtype=f64)
        self.buffers: dict[str, Tensor] = {
            k: (v.to(device=dev, dtype=f64) if v.is_floating_point() else v.to(dev))
            for k, v in problem.buffers.items()
        }
        self.like: Params = {
            k: v.detach().to(device=dev, dtype=f64) for k, v in problem.params.items()
        }
        self.x = problem.x.detach().to(device=dev, dtype=f64)
        n = int(problem.x.shape[0])
        self.y = problem.y.detach().to(device=dev, dtype=f64).reshape(n, -1)
        self.num_samples = n
        self.num_outputs = int(self.y.shape[1])
        self.num_params = sum(int(p.numel()) for p in self.like.values())
        self.num_equations = self.num_samples * self.num_outputs
        self.device = dev
        self.dtype = f64
        with torch.no_grad():
            out = self._forward(flatten(self.like), self.x[:1])
        if out.shape[1] != self.num_outputs:
            raise ValueError(
                f"Shape mismatch: the model has {out.shape[1]} outputs per sample, "
                f"the targets have {self.num_outputs}."
            )
        if chunk_size is None:
            chunk_size = rows_per_block(self.num_params, self.num_outputs, memory_bytes / 4)
        self.chunk_size = int(min(chunk_size, max(self.num_samples, 1)))
        outer = int(0.5 * memory_bytes // (_BYTES_F64 * self.num_outputs * self.num_params))
        self.outer_size = int(min(max(outer, self.chunk_size), max(self.num_samples, 1)))

    # ------------------------------------------------------------------ basics
    def initial_point(self) -> Tensor:
        """The problem's parameters as one flat float64 vector (a copy)."""
        return flatten(self.like).clone()

    def params(self, theta: Tensor) -> Params:
        """``theta`` as a parameter dict (views), shaped like the problem's."""
        return unflatten(theta, self.like)

    def _forward(self, theta: Tensor, x: Tensor) -> Tensor:
        out = functional_call(self.model, (unflatten(theta, self.like), self.buffers), (x,))
        return out.reshape(x.shape[0], -1)  # type: ignore[no-any-return]

    def _chunks(self) -> Iterator[tuple[int, int]]:
        n, c = self.num_samples, self.chunk_size
        for start in range(0, n, c):
            yield start, min(start + c, n)

    def residual(self, theta: Tensor) -> Tensor:
        """``R(theta)``, shape ``(m,)``."""
        self._check_theta(theta)
        parts = []
        with torch.no_grad():
            for a, b in self._chunks():
                parts.append((self._forward(theta, self.x[a:b]) - self.y[a:b]).reshape(-1))
        return torch.cat(parts)

    def loss(self, theta: Tensor) -> Tensor:
        """``L(theta) = ||R||^2 / m``: PyTorch's mean mse (a 0-d tensor)."""
        res = self.residual(theta)
        return (res @ res) / self.num_equations

    # ------------------------------------------------------------------ products
    def jvp(self, theta: Tensor, v: Tensor) -> Tensor:
        """``J v`` for ``v`` in R^P (forward mode, chunked over samples); shape ``(m,)``."""
        self._check_theta(theta)
        self._check_theta(v)
        parts = []
        for a, b in self._chunks():
            xb = self.x[a:b]
            t = jvp(lambda th, xb=xb: self._forward(th, xb), (theta,), (v,))[1]
            parts.append(t.reshape(-1))
        return torch.cat(parts)

    def vjp(self, theta: Tensor, u: Tensor) -> Tensor:
        """``J^T u`` for ``u`` in R^m (reverse mode, chunked over samples); shape ``(P,)``."""
        self._check_theta(theta)
        if u.shape != (self.num_equations,):
            raise ValueError(
                f"Shape mismatch: expected ({self.num_equations},), got {tuple(u.shape)}."
            )
        r = self.num_outputs
        total = torch.zeros_like(theta)
        for a, b in self._chunks():
            xb = self.x[a:b]
            pull = vjp(lambda th, xb=xb: self._forward(th, xb), theta)[1]
            (g,) = pull(u[a * r : b * r].reshape(b - a, r))
            total += g
        return total

    # ------------------------------------------------------------------ blocks
    def jacobian_block(
        self, theta: Tensor, start: int, stop: int, *, out: Tensor | None = None
    ) -> Tensor:
        """Rows of ``J`` for samples ``start..stop-1``: shape ``((stop-start) r, P)``.

        Per-sample Jacobians ``dH(x_mu)/dtheta`` by ``vmap(jacrev)`` with respect to the
        parameter dict (no scatter into a flat gradient per row), copied into ``out``
        (allocated when None) in the flat order.
        """
        self._check_theta(theta)
        if not 0 <= start < stop <= self.num_samples:
            raise ValueError(
                f"Expected 0 <= start < stop <= {self.num_samples}, got {start}, {stop}."
            )
        rows = (stop - start) * self.num_outputs
        if out is None:
            out = torch.empty(rows, self.num_params, device=self.device, dtype=self.dtype)
        elif out.shape != (rows, self.num_params):
            raise ValueError(
                f"Shape mismatch: expected out of shape ({rows}, {self.num_params}), "
                f"got {tuple(out.shape)}."
            )

        def single(p: Params, x1: Tensor) -> Tensor:
            y1 = functional_call(self.model, (p, self.buffers), (x1.unsqueeze(0),))
            return y1.reshape(-1)  # type: ignore[no-any-return]

        jac = vmap(jacrev(single), in_dims=(None, 0))(self.params(theta), self.x[start:stop])
        offset = 0
        for name, like in self.like.items():
            n = int(like.numel())
            out[:, offset : offset + n] = jac[name].reshape(rows, n)
            offset += n
        return out

    def jacobian(self, theta: Tensor, monitor: Monitor | None = None) -> Tensor:
        """The dense ``m x P`` Jacobian, filled in sample chunks (no concatenation copy)."""
        n, r = self.num_samples, self.num_outputs
        J = torch.empty(self.num_equations, self.num_params, device=self.device,
                        dtype=self.dtype)
        for a, b in self._chunks():
            if monitor is not None:
                monitor.check()
            self.jacobian_block(theta, a, b, out=J[a * r : b * r])
            if monitor is not None:
                monitor.report("jacobian", b / n, f"Jacobian rows for {b}/{n} samples")
        return J

    def gram_side(self) -> GramSide:
        """``"rows"`` (``J J^T``, m x m) when ``m <= P``, else ``"cols"`` (``J^T J``)."""
        return "rows" if self.num_equations <= self.num_params else "cols"

    def gram(
        self,
        theta: Tensor,
        side: GramSide | None = None,
        *,
        monitor: Monitor | None = None,
        outer_chunk: int | None = None,
    ) -> Tensor:
        """The Gram matrix of ``J`` without forming ``J``.

        ``side="rows"``: ``K = J J^T`` (m x m), accumulated block by block as
        ``K[B, C] = J_B J_C^T``. The rows of an outer block ``B`` (``outer_size``
        samples, half the memory budget) are built in sub-blocks into one buffer; the
        sub-blocks ``C`` after ``B`` are then computed and streamed (``chunk_size``
        samples each). Memory: ``8 rN^2`` for ``K``, ``8 r P outer_size`` for ``J_B``
        and one sub-block's peak; rows computed ``~ m + m^2 / (2 r outer_size)``.
        ``side="cols"``: ``K = J^T J = sum_B J_B^T J_B`` (P x P), one pass.

        Args:
            theta: the point.
            side: which Gram matrix; default :meth:`gram_side`.
            monitor: progress and cancellation (checked per sub-block).
            outer_chunk: samples per outer block (default ``outer_size``).

        Returns:
            The symmetric Gram matrix (float64).
        """
        side = self.gram_side() if side is None else side
        n, r, c = self.num_samples, self.num_outputs, self.chunk_size
        if side == "cols":
            K = torch.zeros(
                self.num_params, self.num_params, device=self.device, dtype=self.dtype
            )
            for a, b in self._chunks():
                if monitor is not None:
                    monitor.check()
                Jb = self.jacobian_block(theta, a, b)
                K.addmm_(Jb.T, Jb)
                if monitor is not None:
                    monitor.report("gram", b / n, f"J^T J from {b}/{n} samples")
            return K
        if side != "rows":
            raise ValueError(f"side must be 'rows' or 'cols', got {side!r}.")
        outer = self.outer_size if outer_chunk is None else max(1, int(outer_chunk))
        m, P = self.num_equations, self.num_params
        K = torch.zeros(m, m, device=self.device, dtype=self.dtype)
        buf = torch.empty(min(outer, n) * r, P, device=self.device, dtype=self.dtype)
        spans = [(a, min(a + outer, n)) for a in range(0, n, outer)]
        # work: samples whose rows are computed (outer blocks, then the streamed rest)
        total_work = sum(b - a + (n - b) for a, b in spans)
        done = 0
        for a, b in spans:
            JB = buf[: (b - a) * r]
            for a1 in range(a, b, c):
                if monitor is not None:
                    monitor.check()
                b1 = min(a1 + c, b)
                self.jacobian_block(theta, a1, b1, out=JB[(a1 - a) * r : (b1 - a) * r])
            K[a * r : b * r, a * r : b * r] = JB @ JB.T
            done += b - a
            for a2 in range(b, n, c):
                if monitor is not None:
                    monitor.check()
                b2 = min(a2 + c, n)
                JC = self.jacobian_block(theta, a2, b2)
                blk = JB @ JC.T
                K[a * r : b * r, a2 * r : b2 * r] = blk
                K[a2 * r : b2 * r, a * r : b * r] = blk.T
                del JC
                done += b2 - a2
                if monitor is not None:
                    monitor.report(
                        "gram", done / max(total_work, 1), f"J J^T block rows {b * r}/{m}"
                    )
        del buf
        return K

    # ------------------------------------------------------------------ Hessian
    def loss_hessian(self, theta: Tensor, monitor: Monitor | None = None) -> Tensor:
        """Exact ``P x P`` Hessian of ``L = ||R||^2 / m`` by forward-over-reverse HVPs.

        Columns ``H e_i = d/dt grad L(theta + t e_i)`` are computed ``vmap``-ed over
        chunks of the identity; ``H = (2/m) (J^T J + sum_i R_i d^2 R_i)``.
        """
        self._check_theta(theta)
        P = self.num_params
        m = self.num_equations

        def loss_fn(th: Tensor) -> Tensor:
            res = self._forward(th, self.x) - self.y
            return (res * res).sum() / m

        grad_fn = torch.func.grad(loss_fn)

        def hvp(v: Tensor) -> Tensor:
            return jvp(grad_fn, (theta,), (v,))[1]  # type: ignore[no-any-return]

        # chunk of basis vectors: keep chunk * N * width-ish intermediates modest
        per = max(1, min(P, int(2**26 // max(1, self.num_samples * 64))))
        H = torch.empty(P, P, device=self.device, dtype=self.dtype)
        eye = torch.eye(P, device=self.device, dtype=self.dtype)
        for a in range(0, P, per):
            if monitor is not None:
                monitor.check()
            b = min(a + per, P)
            H[a:b] = vmap(hvp)(eye[a:b])
            if monitor is not None:
                monitor.report("hessian", b / P, f"Hessian columns {b}/{P}")
        return 0.5 * (H + H.T)

    # ------------------------------------------------------------------ helpers
    def _check_theta(self, theta: Tensor) -> None:
        if theta.shape != (self.num_params,):
            raise ValueError(
                f"Shape mismatch: expected ({self.num_params},), got {tuple(theta.shape)}."
            )
        if theta.dtype != self.dtype:
            raise TypeError(f"Expected a float64 vector, got {theta.dtype}.")
