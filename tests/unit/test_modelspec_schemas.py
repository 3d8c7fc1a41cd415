"""modelspec schemas: bad inputs name the field; good inputs load with defaults."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from landscope_service.modelspec import ArchitectureSchema, DataSchema, ModelSchema

H = "sha256:" + "a" * 64
MLP = {"type": "mlp", "input_dim": 3, "hidden": [8, 8], "output_dim": 1}


def _errors(schema: Any, data: Any) -> Any:
    with pytest.raises(ValidationError) as info:
        schema.load(data)
    return info.value.messages


def _at(messages: Any, path: tuple[Any, ...]) -> list[str]:
    node = messages
    for key in path:
        assert isinstance(node, dict) and key in node, f"no {key!r} in {messages}"
        node = node[key]
    assert isinstance(node, list) and node and all(isinstance(m, str) for m in node)
    return node


BAD_MODELS: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
    ("hidden zero", {"architecture": {**MLP, "hidden": [8, 0]}}, ("architecture", "hidden", 1)),
    ("hidden float", {"architecture": {**MLP, "hidden": [8.0]}}, ("architecture", "hidden", 0)),
    ("hidden str", {"architecture": {**MLP, "hidden": "8"}}, ("architecture", "hidden")),
    ("input_dim str", {"architecture": {**MLP, "input_dim": "3"}}, ("architecture", "input_dim")),
    ("output_dim 0", {"architecture": {**MLP, "output_dim": 0}}, ("architecture", "output_dim")),
    ("missing input_dim", {"architecture": {"type": "mlp", "output_dim": 1}},
     ("architecture", "input_dim")),
    ("bad activation", {"architecture": {**MLP, "activation": "swish"}},
     ("architecture", "activation")),
    ("bias as int", {"architecture": {**MLP, "bias": 1}}, ("architecture", "bias")),
    ("unknown field", {"architecture": {**MLP, "dropout": 0.1}}, ("architecture", "dropout")),
    ("unknown type", {"architecture": {"type": "transformer"}}, ("architecture", "type")),
    ("no type", {"architecture": {"input_dim": 3}}, ("architecture", "type")),
    ("too wide", {"architecture": {**MLP, "hidden": [70000]}}, ("architecture", "hidden", 0)),
    ("too deep", {"architecture": {**MLP, "hidden": [2] * 65}}, ("architecture", "hidden")),
    ("too many params", {"architecture": {**MLP, "hidden": [60000, 60000]}},
     ("architecture", "hidden")),
    ("residual widths", {"architecture": {**MLP, "hidden": [8, 16], "residual": True}},
     ("architecture", "residual")),
    ("both weights and seed", {"architecture": MLP, "weights": H, "init_seed": 1}, ("weights",)),
    ("both (seed named)", {"architecture": MLP, "weights": H, "init_seed": 1}, ("init_seed",)),
    ("bad blob id", {"architecture": MLP, "weights": "sha256:xyz"}, ("weights",)),
    ("negative seed", {"architecture": MLP, "init_seed": -1}, ("init_seed",)),
    ("missing architecture", {"init_seed": 0}, ("architecture",)),
    ("linear after conv", {"architecture": {"type": "sequential", "input_shape": [1, 8, 8],
        "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 3},
                   {"type": "linear", "out_features": 2}]}}, ("architecture", "layers", 1)),
    ("kernel too big", {"architecture": {"type": "sequential", "input_shape": [1, 4, 4],
        "layers": [{"type": "conv2d", "out_channels": 2, "kernel_size": 5}, {"type": "flatten"}]}},
     ("architecture", "layers", 0, "kernel_size")),
    ("residual changes shape", {"architecture": {"type": "sequential", "input_shape": [4],
        "layers": [{"type": "residual", "layers": [{"type": "linear", "out_features": 3}]}]}},
     ("architecture", "layers", 0, "layers")),
    ("nested layer field", {"architecture": {"type": "sequential", "input_shape": [4],
        "layers": [{"type": "residual", "layers": [{"type": "linear", "out_features": -1}]}]}},
     ("architecture", "layers", 0, "layers", 0, "out_features")),
    ("unknown layer", {"architecture": {"type": "sequential", "input_shape": [4],
        "layers": [{"type": "dropout"}]}}, ("architecture", "layers", 0, "type")),
    ("non-flat output", {"architecture": {"type": "sequential", "input_shape": [1, 4, 4],
        "layers": [{"type": "relu"}]}}, ("architecture", "layers")),
    ("input_shape 2-D", {"architecture": {"type": "sequential", "input_shape": [4, 4],
        "layers": [{"type": "flatten"}]}}, ("architecture", "input_shape")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "path"), BAD_MODELS, ids=[c[0] for c in BAD_MODELS])
def test_bad_model_names_field(case: str, data: dict[str, Any], path: tuple[Any, ...]) -> None:
    _at(_errors(ModelSchema(), data), path)


def test_hidden_message_reads_well() -> None:
    msgs = _errors(ModelSchema(), {"architecture": {**MLP, "hidden": [8, 0]}})
    assert msgs == {"architecture": {"hidden": {1: ["Must be between 1 and 65536."]}}}


def test_model_defaults() -> None:
    out = ModelSchema().load({"architecture": MLP})
    assert out["init_seed"] == 0 and "weights" not in out
    assert out["architecture"] == {
        **MLP, "activation": "tanh", "bias": True, "residual": False, "batchnorm": False,
    }  # fmt: skip
    out = ModelSchema().load({"architecture": MLP, "weights": H})
    assert out["weights"] == H and "init_seed" not in out


def test_architecture_schema_alone_and_sequential_defaults() -> None:
    arch = ArchitectureSchema().load(
        {
            "type": "sequential",
            "input_shape": [1, 6, 6],
            "layers": [
                {"type": "conv2d", "out_channels": 2, "kernel_size": [3, 3]},
                {"type": "avgpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "leaky_relu"},
                {"type": "linear", "out_features": 3},
            ],
        }
    )
    assert arch["layers"][0]["stride"] == [1, 1] and arch["layers"][1]["stride"] == [2, 2]
    assert arch["layers"][3]["negative_slope"] == 0.01


BAD_DATA: list[tuple[str, dict[str, Any], tuple[Any, ...]]] = [
    ("nan in x", {"inline": {"x": [[1.0], [float("nan")]], "y": [[1.0], [2.0]]}},
     ("inline", "x")),
    ("inf in y", {"inline": {"x": [[1.0]], "y": [[float("inf")]]}}, ("inline", "y")),
    ("ragged x", {"inline": {"x": [[1.0, 2.0], [1.0]], "y": [[1.0], [2.0]]}}, ("inline", "x")),
    ("string in y", {"inline": {"x": [[1.0]], "y": [["1"]]}}, ("inline", "y")),
    ("bool in y", {"inline": {"x": [[1.0]], "y": [True]}}, ("inline", "y")),
    ("empty x", {"inline": {"x": [], "y": []}}, ("inline", "x")),
    ("x not list", {"inline": {"x": 3, "y": [1]}}, ("inline", "x")),
    ("missing y", {"inline": {"x": [[1.0]]}}, ("inline", "y")),
    ("too many numbers", {"inline": {"x": [[0.0]] * 60_000, "y": [[0.0]] * 60_000}},
     ("inline", "_schema")),
    ("two sources", {"inline": {"x": [[1.0]], "y": [[1.0]]}, "synthetic": {"name": "circles"}},
     ("synthetic",)),
    ("no source", {}, ("_schema",)),
    ("blob without format", {"blob": H}, ("format",)),
    ("format without blob", {"format": "npz", "inline": {"x": [[1.0]], "y": [[1.0]]}},
     ("format",)),
    ("bad format", {"blob": H, "format": "parquet"}, ("format",)),
    ("bad synthetic name", {"synthetic": {"name": "mnist"}}, ("synthetic", "name")),
    ("too many samples", {"synthetic": {"name": "circles", "num_samples": 10**7}},
     ("synthetic", "num_samples")),
    ("option of another generator", {"synthetic": {"name": "two_moons", "factor": 0.3}},
     ("synthetic", "factor")),
    ("negative noise", {"synthetic": {"name": "two_moons", "noise": -1.0}},
     ("synthetic", "noise")),
    ("noise as string", {"synthetic": {"name": "two_moons", "noise": "0.1"}},
     ("synthetic", "noise")),
    ("noise nan", {"synthetic": {"name": "two_moons", "noise": float("nan")}},
     ("synthetic", "noise")),
    ("unknown synthetic option", {"synthetic": {"name": "two_moons", "classes": 3}},
     ("synthetic", "classes")),
]  # fmt: skip


@pytest.mark.parametrize(("case", "data", "path"), BAD_DATA, ids=[c[0] for c in BAD_DATA])
def test_bad_data_names_field(case: str, data: dict[str, Any], path: tuple[Any, ...]) -> None:
    _at(_errors(DataSchema(), data), path)


def test_nan_message_names_position() -> None:
    msgs = _errors(DataSchema(), {"inline": {"x": [[1.0, 2.0], [3.0, float("nan")]], "y": [1, 2]}})
    assert "[1][1]" in msgs["inline"]["x"][0]


def test_synthetic_defaults_filled() -> None:
    out = DataSchema().load({"synthetic": {"name": "teacher_student"}})
    assert out["synthetic"] == {
        "name": "teacher_student", "num_samples": 128, "seed": 0, "noise": 0.0,
        "teacher_hidden": [32], "teacher_activation": "tanh",
    }  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        {"architecture": MLP, "weights": H},
        {"architecture": {"type": "sequential", "input_shape": [4], "layers": [
            {"type": "residual", "layers": [{"type": "linear", "out_features": 4},
                                            {"type": "leaky_relu", "negative_slope": 0.1}]},
            {"type": "linear", "out_features": 1}]}},
    ],
)  # fmt: skip
def test_model_dump_round_trips(data: dict[str, Any]) -> None:
    loaded = ModelSchema().load(data)
    dumped = ModelSchema().dump(loaded)
    assert dumped == loaded and ModelSchema().load(dumped) == loaded


def test_openapi_describes_architecture_as_one_of() -> None:
    from apispec import APISpec
    from apispec.ext.marshmallow import MarshmallowPlugin

    from landscope_service.modelspec.schemas import polymorphic_openapi

    spec = APISpec("t", "1", "3.1.0", plugins=[MarshmallowPlugin()])
    spec.components.schema("Model", schema=ModelSchema)
    spec.components.schema("Data", schema=DataSchema)
    polymorphic_openapi(spec)
    schemas = spec.to_dict()["components"]["schemas"]
    assert schemas["Architecture"]["discriminator"]["mapping"]["mlp"].endswith("/MLP")
    assert "hidden" in schemas["MLP"]["properties"]
    assert schemas["Layer"]["discriminator"]["mapping"]["residual"].endswith("/LayerResidual")
