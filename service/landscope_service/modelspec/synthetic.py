"""Named synthetic data sets, generated with numpy from a seed (no torch).

Every generator draws from ``numpy.random.default_rng`` streams spawned from one
``SeedSequence(seed)``, in float64 on the CPU, so the same request gives the same data
on every machine and device (the worker casts to the job's dtype afterwards).

Targets follow the loss: for ``mse`` ``y`` has shape ``(N, r)`` (class generators give
one-hot rows, or a 0/1 column when ``r == 1`` and there are two classes); for
``cross_entropy`` ``y`` holds ``N`` integer labels in ``[0, r)`` (regression generators
give the argmax of their noisy targets).

Generators:

* ``teacher_student``: ``x ~ N(0, I)``; ``y`` from a random teacher MLP
  ``input_dim -> teacher_hidden... -> r`` with ``teacher_activation``, weights
  ``N(0, 1/fan_in)``, biases ``N(0, 0.01)``; plus ``N(0, noise^2)`` on the targets.
* ``linear_regression``: ``x ~ N(0, I)``, ``y = x W^T + N(0, noise^2)`` with
  ``W ~ N(0, 1/input_dim)``.
* ``gaussian_classes``: ``K = r`` classes (2 when ``r == 1``), balanced; class means
  ``separation * N(0, I/input_dim)``, each class ``N(mean, noise^2 I)``.
* ``two_moons``: two interleaved half circles in 2-D plus ``N(0, noise^2)``; ``input_dim``
  must be 2.
* ``circles``: two concentric circles (radius 1 and ``factor``) plus noise; 2-D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["CLASS_GENERATORS", "generate", "synthetic_problems"]

CLASS_GENERATORS = frozenset({"gaussian_classes", "two_moons", "circles"})
_MAX_X_VALUES = 100_000_000


def _num_classes(name: str, output_dim: int) -> int:
    if name in ("two_moons", "circles"):
        return 2
    return output_dim if output_dim >= 2 else 2


def synthetic_problems(
    spec: dict[str, Any], *, input_shape: Sequence[int], output_dim: int, loss: str
) -> dict[str, list[str]]:
    """Check a synthetic spec against the architecture and loss.

    Args:
        spec: the validated ``data.synthetic`` object.
        input_shape: one sample's shape.
        output_dim: r.
        loss: ``"mse"`` or ``"cross_entropy"``.

    Returns:
        Messages by field of ``data.synthetic`` (empty when all is well).
    """
    name = spec["name"]
    errors: dict[str, list[str]] = {}
    numel = math.prod(input_shape)
    if spec["num_samples"] * numel > _MAX_X_VALUES:
        errors["num_samples"] = [
            f"num_samples * input size = {spec['num_samples'] * numel} values; at most "
            f"{_MAX_X_VALUES} are allowed."
        ]
    if name in ("two_moons", "circles") and tuple(input_shape) != (2,):
        errors["name"] = [
            f"{name} is 2-D data: the architecture needs input_dim 2, it has input shape "
            f"{tuple(input_shape)}."
        ]
    if name in CLASS_GENERATORS:
        k = _num_classes(name, output_dim)
        if loss == "cross_entropy" and output_dim != k:
            errors.setdefault("name", []).append(
                f"{name} has {k} classes; with cross_entropy the architecture needs "
                f"output_dim {k}, it has {output_dim}."
            )
        if loss == "mse" and output_dim not in (1, k):
            errors.setdefault("name", []).append(
                f"{name} has {k} classes; with mse the targets are one-hot (output_dim {k}) "
                f"or a 0/1 column (output_dim 1), the architecture has output_dim {output_dim}."
            )
    return errors


def _activation(name: str, z: np.ndarray) -> np.ndarray:
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z >= 0, z, 0.01 * z)
    if name == "quadratic":
        return z**2
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "gelu":
        from scipy.special import erf

        return 0.5 * z * (1.0 + erf(z / math.sqrt(2.0)))
    if name == "silu":
        return z / (1.0 + np.exp(-z))
    raise ValueError(f"Unknown activation {name!r}.")


def _targets(
    raw: np.ndarray, loss: str
) -> np.ndarray:  # regression outputs -> targets for the loss
    if loss == "cross_entropy":
        return np.argmax(raw, axis=1).astype(np.int64)
    return raw


def _class_targets(labels: np.ndarray, k: int, output_dim: int, loss: str) -> np.ndarray:
    if loss == "cross_entropy":
        return labels.astype(np.int64)
    if output_dim == 1:
        return labels.astype(np.float64).reshape(-1, 1)
    return np.eye(k, dtype=np.float64)[labels]


def generate(
    spec: dict[str, Any], *, input_shape: Sequence[int], output_dim: int, loss: str
) -> tuple[np.ndarray, np.ndarray]:
    """Generate a synthetic data set.

    Args:
        spec: the validated ``data.synthetic`` object (name, num_samples, seed, options).
        input_shape: one sample's shape; ``x`` gets shape ``(N, *input_shape)``.
        output_dim: r.
        loss: ``"mse"`` or ``"cross_entropy"``.

    Returns:
        ``(x, y)``: ``x`` float64; ``y`` float64 ``(N, r)`` for mse, int64 ``(N,)``
        for cross_entropy.

    Raises:
        ValueError: if the spec does not fit the architecture (see
            :func:`synthetic_problems`).
    """
    problems = synthetic_problems(spec, input_shape=input_shape, output_dim=output_dim, loss=loss)
    if problems:
        raise ValueError(" ".join(m for msgs in problems.values() for m in msgs))
    name = spec["name"]
    n = int(spec["num_samples"])
    d = math.prod(input_shape)
    rx, rp, rn = (np.random.default_rng(s) for s in np.random.SeedSequence(spec["seed"]).spawn(3))
    noise = float(spec.get("noise", 0.0))
    if name == "teacher_student":
        x = rx.standard_normal((n, d))
        h = x
        widths = [d, *spec.get("teacher_hidden", [32]), output_dim]
        for i in range(len(widths) - 1):
            w = rp.standard_normal((widths[i + 1], widths[i])) / math.sqrt(widths[i])
            b = 0.1 * rp.standard_normal(widths[i + 1])
            h = h @ w.T + b
            if i < len(widths) - 2:
                h = _activation(spec.get("teacher_activation", "tanh"), h)
        y = _targets(h + noise * rn.standard_normal(h.shape), loss)
    elif name == "linear_regression":
        x = rx.standard_normal((n, d))
        w = rp.standard_normal((output_dim, d)) / math.sqrt(d)
        y = _targets(x @ w.T + noise * rn.standard_normal((n, output_dim)), loss)
    elif name == "gaussian_classes":
        k = _num_classes(name, output_dim)
        labels = rx.permutation(np.arange(n) % k)
        means = float(spec.get("separation", 3.0)) * rp.standard_normal((k, d)) / math.sqrt(d)
        x = means[labels] + noise * rn.standard_normal((n, d))
        y = _class_targets(labels, k, output_dim, loss)
    elif name in ("two_moons", "circles"):
        labels = rx.permutation(np.arange(n) % 2)
        if name == "two_moons":
            t = rp.uniform(0.0, math.pi, n)
            x = np.where(
                (labels == 0)[:, None],
                np.stack([np.cos(t), np.sin(t)], axis=1),
                np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1),
            )
        else:
            t = rp.uniform(0.0, 2.0 * math.pi, n)
            radius = np.where(labels == 0, 1.0, float(spec.get("factor", 0.5)))
            x = radius[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
        x = x + noise * rn.standard_normal((n, 2))
        y = _class_targets(labels, 2, output_dim, loss)
    else:
        raise ValueError(f"Unknown synthetic data set {name!r}.")
    return np.ascontiguousarray(x.reshape(n, *input_shape), dtype=np.float64), y
