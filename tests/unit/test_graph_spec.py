"""The graph architecture at submit time: shapes, names and refusals, without torch."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from marshmallow import ValidationError

from landscope_service.modelspec.graph import GRAPH_LIMITS, OPS
from landscope_service.modelspec.schemas import ArchitectureSchema
from landscope_service.modelspec.shapes import analyze


def _conv_net() -> dict[str, Any]:
    return {
        "type": "graph",
        "input": {"name": "x", "shape": [3, 8, 8]},
        "nodes": [
            {"name": "conv1", "op": "conv2d", "inputs": ["x"],
             "attrs": {"out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False}},
            {"name": "bn1", "op": "batchnorm2d", "inputs": ["conv1"]},
            {"name": "relu", "op": "relu", "inputs": ["bn1"]},
            {"name": "layer1.0.conv", "op": "conv2d", "inputs": ["relu"],
             "attrs": {"out_channels": 4, "kernel_size": [3, 3], "padding": [1, 1]}},
            {"name": "add", "op": "add", "inputs": ["layer1.0.conv", "relu"]},
            {"name": "pool", "op": "adaptive_avg_pool2d", "inputs": ["add"],
             "attrs": {"output_size": 1}},
            {"name": "flatten", "op": "flatten", "inputs": ["pool"]},
            {"name": "fc", "op": "linear", "inputs": ["flatten"], "attrs": {"out_features": 10}},
        ],
        "output": "fc",
    }


def _errors(arch: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        ArchitectureSchema().load(arch)
    return json.dumps(info.value.messages)


def test_names_and_shapes_of_every_parameter_and_buffer() -> None:
    info = analyze(ArchitectureSchema().load(_conv_net()))
    assert info.param_shapes == {
        "conv1.weight": (4, 3, 3, 3),
        "bn1.weight": (4,),
        "bn1.bias": (4,),
        "layer1.0.conv.weight": (4, 4, 3, 3),
        "layer1.0.conv.bias": (4,),
        "fc.weight": (10, 4),
        "fc.bias": (10,),
    }
    assert info.buffer_shapes == {
        "bn1.running_mean": (4,), "bn1.running_var": (4,), "bn1.num_batches_tracked": ()}
    assert info.output_shape == (10,)
    assert info.num_params == 108 + 8 + 144 + 4 + 40 + 10
    assert info.layer_types["layer1.0.conv"] == "conv2d"


def test_shape_inference_known_sizes() -> None:
    """Strided, dilated, grouped conv; ceil-mode pool; slicing with steps; pad; attention."""
    arch = {
        "type": "graph",
        "input": {"shape": [4, 11, 11]},
        "nodes": [
            {"name": "c", "op": "conv2d", "inputs": ["x"], "attrs": {
                "out_channels": 6, "kernel_size": 3, "stride": 2, "dilation": 2, "groups": 2}},
            {"name": "p", "op": "max_pool2d", "inputs": ["c"],
             "attrs": {"kernel_size": 2, "ceil_mode": True}},
            {"name": "s", "op": "slice", "inputs": ["p"], "attrs": {"index": [[None, None, 2]]}},
            {"name": "z", "op": "pad", "inputs": ["s"], "attrs": {"pad": [0, 0, 0, 0, 1, 2]}},
            {"name": "t", "op": "reshape", "inputs": ["z"], "attrs": {"shape": [6, -1]}},
            {"name": "a", "op": "multihead_attention", "inputs": ["t"],
             "attrs": {"num_heads": 2, "causal": True}},
            {"name": "m", "op": "mean", "inputs": ["a"], "attrs": {"dims": [1]}},
        ],
        "output": "m",
    }
    info = analyze(ArchitectureSchema().load(arch))
    g = info.graph
    assert g is not None
    shapes = {n.name: n.out_shape for n in g.nodes}
    # conv: (11 - 2*(3-1) - 1)//2 + 1 = 4; ceil pool: ceil((4-2)/2)+1 = 2
    assert shapes["c"] == (6, 4, 4)
    assert shapes["p"] == (6, 2, 2)
    assert shapes["s"] == (3, 2, 2)
    assert shapes["z"] == (6, 2, 2)
    assert shapes["t"] == (6, 4)
    assert shapes["m"] == (4,)
    assert info.param_shapes["c.weight"] == (6, 2, 3, 3)
    assert info.param_shapes["a.in_proj_weight"] == (12, 4)
    assert info.param_shapes["a.out_proj.weight"] == (4, 4)


def test_hostile_graphs_are_refused_naming_the_node() -> None:
    base = _conv_net()

    cyc = copy.deepcopy(base)
    cyc["nodes"][0]["inputs"] = ["add"]
    msg = _errors(cyc)
    assert "cycle" in msg and "'conv1'" in msg

    unknown = copy.deepcopy(base)
    unknown["nodes"][2]["op"] = "eval"
    msg = _errors(unknown)
    assert "Unknown op" in msg and '"2"' in msg

    mismatch = copy.deepcopy(base)
    mismatch["nodes"][3]["attrs"]["out_channels"] = 5
    msg = _errors(mismatch)
    assert "'add'" in msg and "(N, 5, 8, 8) and (N, 4, 8, 8) do not broadcast" in msg

    collide = copy.deepcopy(base)
    collide["nodes"][2]["name"] = "conv1.weight"
    collide["nodes"][3]["inputs"] = ["conv1.weight"]
    collide["nodes"][4]["inputs"] = ["layer1.0.conv", "conv1.weight"]
    msg = _errors(collide)
    assert "collides with a parameter or buffer of node 'conv1'" in msg

    dead = copy.deepcopy(base)
    dead["nodes"].append({"name": "extra", "op": "relu", "inputs": ["fc"]})
    assert "does not contribute to the output" in _errors(dead)

    dup = copy.deepcopy(base)
    dup["nodes"][2]["name"] = "bn1"
    assert "already used" in _errors(dup)

    batch = copy.deepcopy(base)
    batch["nodes"][6]["attrs"] = {"start_dim": 0}
    assert "batch dimension" in _errors(batch)

    attr = copy.deepcopy(base)
    attr["nodes"][0]["attrs"]["kernel_size"] = 0
    assert "kernel_size must be between 1 and 64" in _errors(attr)


def test_a_million_nodes_are_refused_before_they_are_read() -> None:
    arch = _conv_net()
    arch["nodes"] = [arch["nodes"][2]] * 1_000_000
    start = time.process_time()
    msg = _errors(arch)
    assert f"At most {GRAPH_LIMITS['max_nodes']} nodes" in msg
    assert time.process_time() - start < 1.0  # the list is not deserialised item by item


def test_limits_on_parameters_and_activations() -> None:
    wide = _conv_net()
    wide["nodes"][-1]["attrs"]["out_features"] = 65_536
    wide["nodes"][3]["attrs"]["out_channels"] = 60_000
    wide["nodes"][0]["attrs"]["out_channels"] = 60_000
    msg = _errors(wide)
    assert "values per sample" in msg or "parameters" in msg
    attn = {
        "type": "graph", "input": {"shape": [4000, 8]},
        "nodes": [{"name": "a", "op": "multihead_attention", "inputs": ["x"],
                   "attrs": {"num_heads": 8}},
                  {"name": "m", "op": "mean", "inputs": ["a"], "attrs": {"dims": [1]}}],
        "output": "m"}
    msg = _errors(attn)
    assert "'a'" in msg and "128000000 values per sample" in msg


def test_tokens_must_feed_an_embedding() -> None:
    arch = {"type": "graph", "input": {"shape": [5], "dtype": "int64"},
            "nodes": [{"name": "fc", "op": "linear", "inputs": ["x"],
                       "attrs": {"out_features": 2}}],
            "output": "fc"}
    assert "token ids" in _errors(arch)
    arch["nodes"] = [
        {"name": "emb", "op": "embedding", "inputs": ["x"],
         "attrs": {"num_embeddings": 7, "embedding_dim": 3}},
        {"name": "m", "op": "mean", "inputs": ["emb"], "attrs": {"dims": [1]}},
    ]
    arch["output"] = "m"
    info = analyze(ArchitectureSchema().load(arch))
    assert info.input_dtype == "int64" and info.graph is not None
    assert info.graph.max_token == 7


def test_shared_module_must_match_its_first_use() -> None:
    arch = {"type": "graph", "input": {"shape": [4]},
            "nodes": [{"name": "h", "op": "linear", "inputs": ["x"],
                       "attrs": {"out_features": 4}},
                      {"name": "h_1", "op": "linear", "inputs": ["h"], "module": "h",
                       "attrs": {"out_features": 4}}],
            "output": "h_1"}
    info = analyze(ArchitectureSchema().load(arch))
    assert list(info.param_shapes) == ["h.weight", "h.bias"]
    arch["nodes"][1]["attrs"]["out_features"] = 3
    assert "shares module 'h'" in _errors(arch)


def test_every_op_is_documented() -> None:
    with open("docs/modelspec.md", encoding="utf-8") as f:
        doc = f.read()
    missing = [op for op in OPS if f"`{op}`" not in doc]
    assert not missing


def test_the_api_side_never_imports_torch() -> None:
    code = (
        "import sys, json\n"
        "from landscope_service.modelspec.schemas import ArchitectureSchema\n"
        "from landscope_service.modelspec.shapes import analyze\n"
        f"analyze(ArchitectureSchema().load(json.loads({json.dumps(json.dumps(_conv_net()))})))\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
