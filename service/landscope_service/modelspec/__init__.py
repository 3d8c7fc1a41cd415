"""Architecture spec, weights and data of a job request.

This package's top level is torch-free (numpy and marshmallow only), so the API can
validate requests and compute facts without importing torch. The worker-side functions
import torch: :mod:`.build` (``build_model``, ``init_params``, ``build_problem``),
:func:`.weights.load_params` / :func:`.weights.load_weights` and
:func:`.data.load_data` (torch imported when called).
"""

from .data import inspect_data, load_arrays
from .facts import submit_context
from .schemas import (
    ArchitectureSchema,
    DataSchema,
    InlineDataSchema,
    LayerSchema,
    MLPSchema,
    ModelSchema,
    SequentialSchema,
    SyntheticSchema,
)
from .shapes import (
    ACTIVATIONS,
    LIMITS,
    ArchitectureInfo,
    SpecError,
    activation,
    analyze,
    buffer_shapes,
    input_dim,
    input_shape,
    layers_of,
    num_params,
    output_dim,
    param_shapes,
)
from .synthetic import generate, synthetic_problems
from .weights import check_weights, inspect_weights

__all__ = [
    "ACTIVATIONS",
    "LIMITS",
    "ArchitectureInfo",
    "ArchitectureSchema",
    "DataSchema",
    "InlineDataSchema",
    "LayerSchema",
    "MLPSchema",
    "ModelSchema",
    "SequentialSchema",
    "SpecError",
    "SyntheticSchema",
    "activation",
    "analyze",
    "buffer_shapes",
    "check_weights",
    "generate",
    "input_dim",
    "input_shape",
    "inspect_data",
    "inspect_weights",
    "layers_of",
    "load_arrays",
    "num_params",
    "output_dim",
    "param_shapes",
    "submit_context",
    "synthetic_problems",
]
