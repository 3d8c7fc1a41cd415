"""Job requests: the typed :class:`JobRequest` and helpers that build its parts.

Example:
    >>> from landscope import JobRequest, mlp, model, synthetic_data
    >>> request = JobRequest(
    ...     kind="evaluate",
    ...     model=model(mlp(3, [8, 8], 1, "tanh"), init_seed=0),
    ...     data=synthetic_data("teacher_student", num_samples=64, seed=0),
    ... )
    >>> request.to_json()["model"]["architecture"]["hidden"]
    [8, 8]
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from landscope.kinds import KindOptions
from landscope.types import Blob

__all__ = [
    "Activation",
    "DataFormat",
    "JobRequest",
    "ModelSpec",
    "blob_data",
    "inline_data",
    "mlp",
    "model",
    "synthetic_data",
]

Activation = Literal[
    "identity",
    "relu",
    "leaky_relu",
    "quadratic",
    "tanh",
    "sigmoid",
    "softplus",
    "gelu",
    "silu",
]
DataFormat = Literal["npz", "safetensors", "csv"]
Loss = Literal["mse", "cross_entropy"]
Device = Literal["auto", "cpu", "cuda"]
DType = Literal["float32", "float64"]


def _blob_id(ref: str | Blob) -> str:
    return ref.id if isinstance(ref, Blob) else ref


def _to_list(values: Any, name: str) -> list[Any]:
    """Turn a nested sequence, NumPy array or torch tensor into nested lists."""
    tolist = getattr(values, "tolist", None)
    if callable(tolist):
        converted = tolist()
        if not isinstance(converted, list):
            raise ValueError(f"{name} must be at least one-dimensional, got a scalar.")
        return converted
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise TypeError(
            f"{name} must be a sequence of rows, an array or a tensor, got {type(values).__name__}."
        )
    return [_to_list(row, name) if _is_nested(row) else row for row in values]


def _is_nested(value: Any) -> bool:
    return callable(getattr(value, "tolist", None)) or (
        isinstance(value, Sequence) and not isinstance(value, str | bytes)
    )


def mlp(
    input_dim: int,
    hidden: Sequence[int],
    output_dim: int,
    activation: Activation | str = "tanh",
    bias: bool = True,
    *,
    residual: bool = False,
    batchnorm: bool = False,
) -> dict[str, Any]:
    """An ``mlp`` architecture spec.

    Its parameters are named like the equivalent ``torch.nn.Sequential`` of ``Linear``
    and activation modules (``0.weight``, ``0.bias``, ``2.weight``, ...), so a state
    dict of such a Sequential uploads as it is.

    Args:
        input_dim: n0, the input width.
        hidden: the hidden widths, e.g. ``[8, 8]`` (may be empty).
        output_dim: r, the output width (classes for cross entropy).
        activation: the activation between layers.
        bias: whether the linear layers have biases.
        residual: add skip connections between equal-width hidden layers.
        batchnorm: add batch norm after each hidden linear layer.

    Returns:
        The ``architecture`` object.

    Raises:
        ValueError: a width is not a positive integer.
    """
    widths = [input_dim, *hidden, output_dim]
    for width in widths:
        if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
            raise ValueError(f"Layer widths must be positive integers, got {widths}.")
    spec: dict[str, Any] = {
        "type": "mlp",
        "input_dim": input_dim,
        "hidden": list(hidden),
        "output_dim": output_dim,
        "activation": activation,
        "bias": bias,
    }
    if residual:
        spec["residual"] = True
    if batchnorm:
        spec["batchnorm"] = True
    return spec


def model(
    architecture: Mapping[str, Any],
    *,
    weights: str | Blob | None = None,
    init_seed: int | None = None,
) -> dict[str, Any]:
    """The ``model`` part of a request: an architecture and where its weights come from.

    Args:
        architecture: from :func:`mlp`, or any architecture object of the API.
        weights: the blob id (or :class:`~landscope.Blob`) of a safetensors or
            state_dict file; see ``client.blobs.upload_state_dict``.
        init_seed: seed of a fresh initialisation when there are no weights (the
            server's default is 0).

    Returns:
        The ``model`` object.

    Raises:
        ValueError: both ``weights`` and ``init_seed`` were given.
    """
    if weights is not None and init_seed is not None:
        raise ValueError("Pass either weights or init_seed, not both.")
    part: dict[str, Any] = {"architecture": dict(architecture)}
    if weights is not None:
        part["weights"] = _blob_id(weights)
    if init_seed is not None:
        part["init_seed"] = init_seed
    return part


def inline_data(x: Any, y: Any) -> dict[str, Any]:
    """Small data sent inside the request.

    Args:
        x: inputs, N rows (nested lists, a NumPy array or a torch tensor).
        y: targets, N rows (for ``cross_entropy``: class indices).

    Returns:
        The ``data`` object.

    Raises:
        ValueError: ``x`` and ``y`` have different numbers of rows.
    """
    xs = _to_list(x, "x")
    ys = _to_list(y, "y")
    if len(xs) != len(ys):
        raise ValueError(f"x and y must have the same number of rows, got {len(xs)} and {len(ys)}.")
    return {"inline": {"x": xs, "y": ys}}


def blob_data(
    blob: str | Blob | Sequence[str | Blob],
    format: DataFormat | str = "npz",
    transform: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, Any]:
    """Data from an uploaded file, or several read as one data set.

    Args:
        blob: the blob id or :class:`~landscope.Blob`; a list of them is one data set,
            the files concatenated in order (streamed: npz or safetensors).
        format: ``npz``, ``safetensors`` or ``csv``.
        transform: ``{"mean": [...], "std": [...]}``: the service computes
            ``x' = (x - mean) / std`` per channel (axis 1 of images, the last axis of flat
            inputs) on each batch, so uint8 or float16 files are sent as they are and read
            memory-mapped (docs/data.md).

    Returns:
        The ``data`` object.
    """
    out: dict[str, Any]
    if isinstance(blob, str | Blob):
        out = {"blob": _blob_id(blob), "format": format}
    else:
        out = {"blobs": [_blob_id(b) for b in blob], "format": format}
    if transform is not None:
        out["transform"] = {"mean": [float(m) for m in transform["mean"]],
                            "std": [float(s) for s in transform["std"]]}
    return out


def synthetic_data(name: str, num_samples: int, seed: int = 0, **params: Any) -> dict[str, Any]:
    """Data from one of the service's named generators.

    Args:
        name: the generator, e.g. ``teacher_student``.
        num_samples: N.
        seed: the generator's seed.
        **params: further generator parameters.

    Returns:
        The ``data`` object.
    """
    return {"synthetic": {"name": name, "num_samples": num_samples, "seed": seed, **params}}


@dataclass(frozen=True)
class ModelSpec:
    """A network described for the service, with its weights (from :func:`~landscope.from_module`).

    Attributes:
        architecture: the ``graph`` architecture (JSON).
        weights: a safetensors file of the state_dict entries the graph uses, under the
            module's own names.
        unused: state_dict keys of the module that its ``forward`` never uses (left out
            of ``weights``).
    """

    architecture: dict[str, Any]
    weights: bytes = field(repr=False)
    unused: tuple[str, ...] = ()

    @property
    def weights_id(self) -> str:
        """The blob id the weights get once uploaded (``sha256:<hex>`` of the bytes)."""
        return f"sha256:{hashlib.sha256(self.weights).hexdigest()}"

    def model(self) -> dict[str, Any]:
        """The request's ``model`` object, referring to the weights by their blob id.

        The weights must be uploaded (``client.blobs.upload(spec.weights)``);
        ``client.jobs.submit`` does it for a request whose ``model`` is this spec.
        """
        return {"architecture": dict(self.architecture), "weights": self.weights_id}


@dataclass(frozen=True)
class JobRequest:
    """A job request (the body of ``POST /v1/jobs``).

    Attributes:
        kind: ``evaluate``, ``hessian_spectrum``, ``minimizer_manifold`` or
            ``level_set_connectivity``.
        model: from :func:`model`, or a :class:`ModelSpec` (``from_module``), whose
            weights ``client.jobs.submit`` uploads once.
        data: from :func:`inline_data`, :func:`blob_data` or :func:`synthetic_data`.
        loss: ``mse`` or ``cross_entropy`` (PyTorch mean reduction).
        options: the kind's options: a typed options object (``EvaluateOptions()``) or
            a plain mapping.
        device: ``auto``, ``cpu`` or ``cuda``.
        dtype: ``float32`` or ``float64``.
        seed: seed of the job's random choices.
        batch_size: evaluate in batches of this size (``None``: full batch).
        metadata: your string pairs (run id, commit), filterable in listings.
    """

    kind: str
    model: Mapping[str, Any] | ModelSpec
    data: Mapping[str, Any]
    loss: Loss | str = "mse"
    options: Mapping[str, Any] | KindOptions | None = None
    device: Device | str = "auto"
    dtype: DType | str = "float32"
    seed: int = 0
    batch_size: int | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON body; ``batch_size`` is left out when ``None``."""
        options: dict[str, Any]
        if self.options is None:
            options = {}
        elif isinstance(self.options, Mapping):
            options = dict(self.options)
        else:
            options = self.options.to_json()
        body: dict[str, Any] = {
            "kind": self.kind,
            "model": self.model.model()
            if isinstance(self.model, ModelSpec)
            else dict(self.model),
            "data": dict(self.data),
            "loss": self.loss,
            "options": options,
            "device": self.device,
            "dtype": self.dtype,
            "seed": self.seed,
            "metadata": dict(self.metadata),
        }
        if self.batch_size is not None:
            body["batch_size"] = self.batch_size
        return body
