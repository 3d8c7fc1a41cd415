"""marshmallow schemas of a job request's ``model`` and ``data`` (no torch).

Every schema rejects unknown fields; integers are strict (``3.0`` and ``"3"`` are not
integers); booleans accept only JSON ``true``/``false``; numbers reject NaN and
infinity. Errors are nested like the request, e.g.
``{"architecture": {"hidden": {1: ["Must be >= 1."]}}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

from marshmallow import (
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates_schema,
)

from ..strict import StrictBoolean, StrictFloat, StrictSchema
from .graph import GRAPH_LIMITS, OPS
from .shapes import ACTIVATIONS, LIMITS, SpecError, analyze

__all__ = [
    "BLOB_ID_PATTERN",
    "INLINE_MAX_NUMBERS",
    "SYNTHETIC_MAX_SAMPLES",
    "SYNTHETIC_NAMES",
    "ArchitectureSchema",
    "DataSchema",
    "GraphInputSchema",
    "GraphNodeSchema",
    "GraphSchema",
    "InlineDataSchema",
    "LayerSchema",
    "MLPSchema",
    "ModelSchema",
    "SequentialSchema",
    "SyntheticSchema",
    "polymorphic_openapi",
]

BLOB_ID_PATTERN = r"^sha256:[0-9a-f]{64}$"
INLINE_MAX_NUMBERS = 100_000
SYNTHETIC_MAX_SAMPLES = 1_000_000
SYNTHETIC_NAMES: tuple[str, ...] = (
    "teacher_student",
    "gaussian_classes",
    "linear_regression",
    "two_moons",
    "circles",
)
_MAX_SEED = 2**63 - 1


def _range(lo: int | float | None = None, hi: int | float | None = None) -> validate.Range:
    if lo is not None and hi is not None:
        msg = "Must be between {min} and {max}."
    elif lo is not None:
        msg = "Must be >= {min}."
    else:
        msg = "Must be <= {max}."
    return validate.Range(min=lo, max=hi, error=msg)


def _int(lo: int | None = None, hi: int | None = None, **kwargs: Any) -> fields.Integer:
    return fields.Integer(strict=True, validate=_range(lo, hi), **kwargs)


_INSTANCES: dict[type[Schema], Schema] = {}


def _instance(cls: type[Schema]) -> Schema:
    """One instance per schema class: making one costs more than a small load."""
    inst = _INSTANCES.get(cls)
    if inst is None:
        inst = _INSTANCES[cls] = cls()
    return inst


class IntOrPair(fields.Field):
    """A positive (or non-negative) integer, or a list of two; loads as ``[a, b]``."""

    def __init__(self, *, minimum: int, maximum: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.minimum = minimum
        self.maximum = maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[int]:
        items = value if isinstance(value, list) else [value]
        if isinstance(value, list) and len(value) != 2:
            raise ValidationError("Must be an integer or a list of two integers.")
        for item in items:
            if isinstance(item, bool) or not isinstance(item, int):
                raise ValidationError("Must be an integer or a list of two integers.")
            if not self.minimum <= item <= self.maximum:
                raise ValidationError(f"Must be between {self.minimum} and {self.maximum}.")
        return [items[0], items[-1]]


_StrictSchema = StrictSchema  # the one strict base of every request schema (..strict)


# ---------------------------------------------------------------------------- polymorphism
class _Polymorphic(_StrictSchema):
    """Dispatches ``load`` on the ``"type"`` field to one schema per type.

    Works on its own (``ArchitectureSchema().load(...)``) and inside
    ``fields.Nested(ArchitectureSchema)``.
    """

    types: ClassVar[dict[str, type[Schema]]] = {}
    what: ClassVar[str] = "object"

    type = fields.String(required=True)

    def load(  # type: ignore[override]
        self,
        data: Any,
        *,
        many: bool | None = None,
        partial: Any = None,
        unknown: Any = None,
    ) -> Any:
        if many or (many is None and self.many):
            if not isinstance(data, list):
                raise ValidationError([f"Must be a list of {self.what} objects."])
            out, errors = [], {}
            for i, item in enumerate(data):
                try:
                    out.append(self._load_one(item, partial))
                except ValidationError as e:
                    errors[i] = e.messages
            if errors:
                raise ValidationError(errors)
            return out
        return self._load_one(data, partial)

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        """Serialise with the schema of ``obj["type"]`` (all fields, not only ``type``)."""
        if many or (many is None and self.many):
            return [self._dump_one(item) for item in obj]
        return self._dump_one(obj)

    def _dump_one(self, obj: Any) -> Any:
        kind = obj.get("type") if isinstance(obj, Mapping) else getattr(obj, "type", None)
        schema_cls = self.types.get(kind) if isinstance(kind, str) else None
        if schema_cls is None:
            return super().dump(obj)
        return schema_cls().dump(obj)

    def _load_one(self, data: Any, partial: Any) -> Any:
        if not isinstance(data, Mapping):
            raise ValidationError({"_schema": [f"Must be a JSON object ({self.what})."]})
        kind = data.get("type")
        if kind is None:
            raise ValidationError(
                {"type": [f"Missing data for required field: one of {sorted(self.types)}."]}
            )
        schema_cls = self.types.get(kind) if isinstance(kind, str) else None
        if schema_cls is None:
            raise ValidationError(
                {"type": [f"Unknown {self.what} type {kind!r}: use one of {sorted(self.types)}."]}
            )
        return _instance(schema_cls).load(data, partial=partial)


class _NoOptions(_StrictSchema):
    type = fields.String(required=True)


class _LeakyReLUSchema(_StrictSchema):
    type = fields.String(required=True)
    negative_slope = StrictFloat(load_default=0.01, validate=_range(0.0, 1.0))


class _LinearSchema(_StrictSchema):
    type = fields.String(required=True)
    out_features = _int(1, LIMITS["max_width"], required=True)
    bias = StrictBoolean(load_default=True)


class _Conv2dSchema(_StrictSchema):
    type = fields.String(required=True)
    out_channels = _int(1, LIMITS["max_width"], required=True)
    kernel_size = IntOrPair(minimum=1, maximum=LIMITS["max_kernel"], required=True)
    stride = IntOrPair(minimum=1, maximum=LIMITS["max_kernel"], load_default=[1, 1])
    padding = IntOrPair(minimum=0, maximum=LIMITS["max_kernel"], load_default=[0, 0])
    bias = StrictBoolean(load_default=True)


class _PoolSchema(_StrictSchema):
    type = fields.String(required=True)
    kernel_size = IntOrPair(minimum=1, maximum=LIMITS["max_kernel"], required=True)
    stride = IntOrPair(minimum=1, maximum=LIMITS["max_kernel"], load_default=None)
    padding = IntOrPair(minimum=0, maximum=LIMITS["max_kernel"], load_default=[0, 0])

    @post_load
    def _default_stride(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if data.get("stride") is None:
            data["stride"] = list(data["kernel_size"])
        return data


class LayerSchema(_Polymorphic):
    """One layer of a ``sequential`` architecture, by ``type``.

    Types: ``linear`` {out_features, bias=true}; ``conv2d`` {out_channels, kernel_size,
    stride=1, padding=0, bias=true}; ``maxpool2d`` / ``avgpool2d`` {kernel_size,
    stride=kernel_size, padding=0}; ``flatten``; ``batchnorm`` (BatchNorm1d on a flat
    input, BatchNorm2d on (C, H, W)); ``layernorm`` (over the whole sample shape);
    ``residual`` {layers}; and the activations (``leaky_relu`` takes
    ``negative_slope=0.01``).
    """

    what: ClassVar[str] = "layer"
    types: ClassVar[dict[str, type[Schema]]] = {}


class _ResidualSchema(_StrictSchema):
    type = fields.String(required=True)
    layers = fields.List(fields.Nested(LayerSchema), required=True, validate=validate.Length(min=1))


LayerSchema.types = {
    "linear": _LinearSchema,
    "conv2d": _Conv2dSchema,
    "maxpool2d": _PoolSchema,
    "avgpool2d": _PoolSchema,
    "flatten": _NoOptions,
    "batchnorm": _NoOptions,
    "layernorm": _NoOptions,
    "residual": _ResidualSchema,
    **{a: (_LeakyReLUSchema if a == "leaky_relu" else _NoOptions) for a in ACTIVATIONS},
}


def _check_fits(data: dict[str, Any]) -> None:
    try:
        analyze(data)
    except SpecError as e:
        raise ValidationError(e.as_messages()) from e


class MLPSchema(_StrictSchema):
    """``{"type": "mlp", "input_dim", "hidden", "output_dim", "activation", "bias",
    "residual", "batchnorm"}``: Linear layers with one activation between them."""

    type = fields.String(required=True, validate=validate.Equal("mlp"))
    input_dim = _int(1, LIMITS["max_width"], required=True)
    hidden = fields.List(
        _int(1, LIMITS["max_width"]),
        load_default=list,
        validate=validate.Length(
            max=LIMITS["max_hidden_layers"],
            error=f"At most {LIMITS['max_hidden_layers']} hidden layers.",
        ),
    )
    output_dim = _int(1, LIMITS["max_width"], required=True)
    activation = fields.String(
        load_default="tanh",
        validate=validate.OneOf(ACTIVATIONS, error="Must be one of: {choices}."),
    )
    bias = StrictBoolean(load_default=True)
    residual = StrictBoolean(load_default=False)
    batchnorm = StrictBoolean(load_default=False)

    @validates_schema(skip_on_field_errors=True)
    def _fits(self, data: dict[str, Any], **kwargs: Any) -> None:
        _check_fits(data)


class SequentialSchema(_StrictSchema):
    """``{"type": "sequential", "input_shape": [...], "layers": [...]}``.

    ``input_shape`` is one sample's shape: ``[features]`` or ``[channels, height, width]``.
    """

    type = fields.String(required=True, validate=validate.Equal("sequential"))
    input_shape = fields.List(
        _int(1, LIMITS["max_width"]),
        required=True,
        validate=validate.Length(
            min=1, max=3, error="Must be [features] or [channels, height, width]."
        ),
    )
    layers = fields.List(
        fields.Nested(LayerSchema),
        required=True,
        validate=validate.Length(min=1, max=LIMITS["max_layers"]),
    )

    @validates_schema(skip_on_field_errors=True)
    def _fits(self, data: dict[str, Any], **kwargs: Any) -> None:
        shape = data["input_shape"]
        if len(shape) == 2:
            raise ValidationError(
                {"input_shape": ["Must be [features] or [channels, height, width]."]}
            )
        if math.prod(shape) > LIMITS["max_input_numel"]:
            raise ValidationError(
                {"input_shape": [f"At most {LIMITS['max_input_numel']} values per sample."]}
            )
        _check_fits(data)


_NAME_RE = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$"
_NAME_MSG = "Must be dot-separated words of letters, digits and underscores, like 'layer1.0.conv1'."


class GraphInputSchema(_StrictSchema):
    """The graph's input: ``{"name": "x", "shape": [...], "dtype": "float" | "int64"}``.

    ``shape`` is one sample's shape, of any rank: ``[T]`` token ids, ``[T, d]``, ``[C, H, W]``.
    """

    name = fields.String(load_default="x", validate=validate.Regexp(_NAME_RE, error=_NAME_MSG))
    shape = fields.List(
        _int(1, LIMITS["max_width"]),
        required=True,
        validate=validate.Length(
            min=1,
            max=GRAPH_LIMITS["max_rank"],
            error=f"Must list 1 to {GRAPH_LIMITS['max_rank']} sizes (one sample, no batch).",
        ),
    )
    dtype = fields.String(
        load_default="float",
        validate=validate.OneOf(
            ("float", "int64"), error="Must be 'float' or 'int64' (token ids for an embedding)."
        ),
    )

    @validates_schema(skip_on_field_errors=True)
    def _size(self, data: dict[str, Any], **kwargs: Any) -> None:
        if math.prod(data["shape"]) > LIMITS["max_input_numel"]:
            raise ValidationError(
                {"shape": [f"At most {LIMITS['max_input_numel']} values per sample."]}
            )


class GraphNodeSchema(_StrictSchema):
    """A node: ``{"name", "op", "inputs": [names], "attrs": {...}, "module"?}``.

    ``op`` is one of the graph ops (docs/modelspec.md lists them with their attributes);
    ``module`` names the node whose parameters this one uses (a layer called twice).
    """

    name = fields.String(required=True, validate=validate.Regexp(_NAME_RE, error=_NAME_MSG))
    op = fields.String(
        required=True,
        validate=validate.OneOf(sorted(OPS), error="Unknown op; use one of: {choices}."),
    )
    inputs = fields.List(
        fields.String(validate=validate.Length(min=1, max=1000)),
        load_default=list,
        validate=validate.Length(max=1024, error="At most 1024 inputs."),
    )
    attrs = fields.Dict(keys=fields.String(), load_default=dict)
    module = fields.String(validate=validate.Regexp(_NAME_RE, error=_NAME_MSG))


class _BoundedNodes(fields.List):
    """A list of nodes whose length is checked before any node is read."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, list) and len(value) > GRAPH_LIMITS["max_nodes"]:
            raise ValidationError(
                f"At most {GRAPH_LIMITS['max_nodes']} nodes, got {len(value)}; a graph this "
                "large is refused before it is read."
            )
        return super()._deserialize(value, attr, data, **kwargs)


class GraphSchema(_StrictSchema):
    """``{"type": "graph", "input": {...}, "nodes": [...], "output": "<node>"}``.

    Named nodes from an allow-list of ops; parameter names are node names, so a traced
    module's ``state_dict`` keys are kept (see :mod:`.graph` and docs/modelspec.md).
    Shapes, parameters and limits are checked here, without torch; errors name the node.
    """

    type = fields.String(required=True, validate=validate.Equal("graph"))
    input = fields.Nested(GraphInputSchema, required=True)
    nodes = _BoundedNodes(
        fields.Nested(GraphNodeSchema), required=True, validate=validate.Length(min=1)
    )
    output = fields.String(required=True, validate=validate.Regexp(_NAME_RE, error=_NAME_MSG))
    module_order = fields.List(
        fields.String(validate=validate.Regexp(_NAME_RE, error=_NAME_MSG)),
        validate=validate.Length(max=GRAPH_LIMITS["max_nodes"]),
        metadata={
            "description": "Optional: the nodes with parameters in the order their modules "
            "are registered (the state_dict order); default: the order of first use."
        },
    )

    @validates_schema(skip_on_field_errors=True)
    def _fits(self, data: dict[str, Any], **kwargs: Any) -> None:
        _check_fits(data)


class ArchitectureSchema(_Polymorphic):
    """An architecture, ``mlp``, ``sequential`` or ``graph`` by its ``type``."""

    what: ClassVar[str] = "architecture"
    types: ClassVar[dict[str, type[Schema]]] = {
        "mlp": MLPSchema,
        "sequential": SequentialSchema,
        "graph": GraphSchema,
    }


# ---------------------------------------------------------------------------- model
class ModelSchema(_StrictSchema):
    """``{"architecture": ..., "weights": "sha256:..."}`` or ``{..., "init_seed": 0}``.

    Neither ``weights`` nor ``init_seed`` means ``init_seed: 0``; both is an error.
    """

    architecture = fields.Nested(ArchitectureSchema, required=True)
    weights = fields.String(
        validate=validate.Regexp(
            BLOB_ID_PATTERN, error="Must be a blob id 'sha256:<64 lowercase hex digits>'."
        )
    )
    init_seed = _int(0, _MAX_SEED)

    @validates_schema(skip_on_field_errors=True)
    def _one_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "weights" in data and "init_seed" in data:
            msg = "Give either weights or init_seed, not both."
            raise ValidationError({"weights": [msg], "init_seed": [msg]})

    @post_load
    def _default_seed(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "weights" not in data and "init_seed" not in data:
            data["init_seed"] = 0
        return data


# ---------------------------------------------------------------------------- data
def _plain_row(row: list[Any], count: list[int]) -> bool:
    """True (and ``row`` counted) when ``row`` is a flat list of JSON ints and finite
    floats within the number limit: the common case, checked without building a path per
    number. False leaves ``count`` alone, and the caller walks the row to say what is
    wrong."""
    n = count[0] + len(row)
    if n > INLINE_MAX_NUMBERS:
        return False
    isfinite = math.isfinite
    for v in row:
        t = type(v)
        if t is float:
            if not isfinite(v):
                return False
        elif t is not int:  # bool, str, list, None, or a subclass: the slow path decides
            return False
    count[0] = n
    return True


def _where(path: list[int], empty: str) -> str:
    return "".join(f"[{i}]" for i in path) or empty


def _walk_numbers(value: Any, path: list[int], count: list[int]) -> tuple[int, ...]:
    """Shape of a rectangular nested list of finite numbers; raises with the position."""
    if isinstance(value, list):
        if not value:
            raise ValidationError(
                f"Empty list at {_where(path, 'the array')}: every row needs values.")
        if not isinstance(value[0], list) and _plain_row(value, count):
            return (len(value),)
        first: tuple[int, ...] | None = None
        for i, item in enumerate(value):
            shape = _walk_numbers(item, [*path, i], count)
            if first is None:
                first = shape
            elif shape != first:
                raise ValidationError(
                    f"Ragged array: {_where([*path, i], '')} has shape {shape}, earlier rows "
                    f"have {first}."
                )
        return (len(value), *(first or ()))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"Value at {_where(path, 'the value')} is {value!r}, not a number.")
    count[0] += 1
    if count[0] > INLINE_MAX_NUMBERS:
        raise ValidationError(
            f"Inline data holds at most {INLINE_MAX_NUMBERS} numbers; upload larger data "
            f"as a blob (POST /v1/blobs) and use {{'blob': ..., 'format': ...}}."
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(
            f"Value at {_where(path, 'the value')} is {value}; all values must be finite.")
    return ()


class NumberArray(fields.Field):
    """A rectangular nested JSON list of finite numbers (at least one row)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Must be a list of rows (a nested list of numbers).")
        _walk_numbers(value, [], [0])
        return value


def _numel(value: Any) -> int:
    n = 1
    while isinstance(value, list):
        n *= len(value)
        value = value[0]
    return n


class InlineDataSchema(_StrictSchema):
    """``{"x": [[...], ...], "y": [[...], ...] | [int, ...]}``, at most 100,000 numbers."""

    x = NumberArray(required=True)
    y = NumberArray(required=True)

    @validates_schema(skip_on_field_errors=True)
    def _total(self, data: dict[str, Any], **kwargs: Any) -> None:
        total = _numel(data["x"]) + _numel(data["y"])
        if total > INLINE_MAX_NUMBERS:
            raise ValidationError(
                {
                    "_schema": [
                        f"Inline data holds at most {INLINE_MAX_NUMBERS} numbers (x and y "
                        f"together), got {total}; upload larger data as a blob "
                        f"(POST /v1/blobs) and use {{'blob': ..., 'format': ...}}."
                    ]
                }
            )


_SYNTH_OPTIONS: dict[str, dict[str, Any]] = {
    "teacher_student": {"noise": 0.0, "teacher_hidden": [32], "teacher_activation": "tanh"},
    "gaussian_classes": {"noise": 1.0, "separation": 3.0},
    "linear_regression": {"noise": 0.0},
    "two_moons": {"noise": 0.1},
    "circles": {"noise": 0.05, "factor": 0.5},
}


class SyntheticSchema(_StrictSchema):
    """A named generator: ``{"name", "num_samples"=128, "seed"=0, ...options}``.

    Options (defaults in brackets) by generator:

    * ``teacher_student``: ``noise`` [0.0] (std of Gaussian noise on targets),
      ``teacher_hidden`` [[32]], ``teacher_activation`` ["tanh"].
    * ``gaussian_classes``: ``noise`` [1.0] (std of each class), ``separation`` [3.0].
    * ``linear_regression``: ``noise`` [0.0].
    * ``two_moons``: ``noise`` [0.1] (std on inputs).
    * ``circles``: ``noise`` [0.05], ``factor`` [0.5] (inner radius / outer radius).
    """

    name = fields.String(
        required=True,
        validate=validate.OneOf(SYNTHETIC_NAMES, error="Must be one of: {choices}."),
    )
    num_samples = _int(1, SYNTHETIC_MAX_SAMPLES, load_default=128)
    seed = _int(0, _MAX_SEED, load_default=0)
    noise = StrictFloat(validate=_range(0.0, 1e6))
    teacher_hidden = fields.List(
        _int(1, 4096), validate=validate.Length(max=8, error="At most 8 teacher layers.")
    )
    teacher_activation = fields.String(
        validate=validate.OneOf(ACTIVATIONS, error="Must be one of: {choices}.")
    )
    separation = StrictFloat(validate=_range(0.0, 1e6))
    factor = StrictFloat(
        validate=validate.Range(
            0.0,
            1.0,
            min_inclusive=False,
            max_inclusive=False,
            error="Must be strictly between 0 and 1.",
        )
    )

    @validates_schema(skip_on_field_errors=True)
    def _options_apply(self, data: dict[str, Any], **kwargs: Any) -> None:
        allowed = _SYNTH_OPTIONS[data["name"]]
        errors = {
            key: [f"Does not apply to {data['name']}; its options are {sorted(allowed)}."]
            for key in data
            if key not in ("name", "num_samples", "seed") and key not in allowed
        }
        if errors:
            raise ValidationError(errors)

    @post_load
    def _defaults(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        for key, default in _SYNTH_OPTIONS[data["name"]].items():
            data.setdefault(key, list(default) if isinstance(default, list) else default)
        return data


class TransformSchema(_StrictSchema):
    """Per-channel normalisation ``x' = (x - mean) / std`` (one number, or one per channel:
    axis 1 of images, the last axis of flat inputs)."""

    mean = fields.List(fields.Float(allow_nan=False), required=True,
                       validate=validate.Length(min=1, max=4096))
    std = fields.List(fields.Float(allow_nan=False, validate=validate.Range(
        min=0, min_inclusive=False, error="Must be > 0.")), required=True,
        validate=validate.Length(min=1, max=4096))


class DataSchema(_StrictSchema):
    """Exactly one of ``inline``, ``blob`` (with ``format``) or ``synthetic``.

    Blob formats: ``npz`` and ``safetensors`` hold arrays named ``x`` and ``y``; ``csv``
    has a header row with columns ``x0, x1, ...`` and ``y0, y1, ...`` (or one ``y``
    column of class labels); see docs/modelspec.md.
    """

    inline = fields.Nested(InlineDataSchema)
    blob = fields.String(
        validate=validate.Regexp(
            BLOB_ID_PATTERN, error="Must be a blob id 'sha256:<64 lowercase hex digits>'."
        )
    )
    blobs = fields.List(
        fields.String(validate=validate.Regexp(
            BLOB_ID_PATTERN, error="Must be a blob id 'sha256:<64 lowercase hex digits>'.")),
        validate=validate.Length(min=1, max=256),
        metadata={"description": "Several npz/safetensors blobs read as one data set, "
                                 "concatenated in this order (streamed; docs/data.md)."},
    )
    format = fields.String(
        validate=validate.OneOf(("npz", "safetensors", "csv"), error="Must be one of: {choices}.")
    )
    transform = fields.Nested(
        TransformSchema,
        metadata={"description": "x' = (x - mean) / std per channel, applied per batch on the "
                                 "worker's device; makes the data set streamed (docs/data.md)."},
    )
    synthetic = fields.Nested(SyntheticSchema)

    @validates_schema(skip_on_field_errors=True)
    def _one_source(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "blobs" in data or "transform" in data:
            self._streamed(data)
            return
        given = [k for k in ("inline", "blob", "synthetic") if k in data]
        if not given:
            raise ValidationError(
                {"_schema": ["Give exactly one of inline, blob (with format) or synthetic."]}
            )
        if len(given) > 1:
            msg = f"Give exactly one of inline, blob or synthetic; got {', '.join(given)}."
            raise ValidationError({k: [msg] for k in given})
        if "blob" in data and "format" not in data:
            raise ValidationError({"format": ["Required with blob: one of npz, safetensors, csv."]})
        if "format" in data and "blob" not in data:
            raise ValidationError({"format": ["Only applies to blob data."]})

    @staticmethod
    def _streamed(data: dict[str, Any]) -> None:
        others = [k for k in ("inline", "synthetic") if k in data]
        if others:
            raise ValidationError({k: ["A streamed data set (transform or blobs) is read "
                                       "from blobs: drop this."] for k in others})
        if ("blob" in data) == ("blobs" in data):
            msg = "Give blob (one file) or blobs (several, concatenated), not both."
            raise ValidationError({"blob": [msg]} if "blob" in data else {"_schema": [
                "A transform needs blob data: give blob (or blobs) with format npz or "
                "safetensors."]})
        if data.get("format") not in ("npz", "safetensors"):
            raise ValidationError({"format": [
                "A streamed data set (transform or blobs) needs format npz (uncompressed, "
                "np.savez) or safetensors."]})


def polymorphic_openapi(spec: Any) -> None:
    """Describe the ``type``-dispatched schemas as ``oneOf`` in an apispec ``APISpec``.

    The marshmallow plugin sees only the dispatchers' ``type`` field; call this after
    the schemas that nest them are registered so that ``Architecture`` and ``Layer``
    become ``oneOf`` the per-type schemas with a ``type`` discriminator.

    Args:
        spec: an ``apispec.APISpec`` with the ``MarshmallowPlugin``.
    """
    components = spec.components
    for dispatcher, prefix in ((ArchitectureSchema, ""), (LayerSchema, "Layer")):
        refs: dict[str, str] = {}
        for kind, schema_cls in dispatcher.types.items():
            name = f"{prefix}{schema_cls.__name__.lstrip('_').removesuffix('Schema')}"
            if name not in components.schemas:
                components.schema(name, schema=schema_cls)
            refs[kind] = f"#/components/schemas/{name}"
        target = "Architecture" if dispatcher is ArchitectureSchema else "Layer"
        components.schemas[target] = {
            "oneOf": [{"$ref": r} for r in dict.fromkeys(refs.values())],
            "discriminator": {"propertyName": "type", "mapping": refs},
        }
