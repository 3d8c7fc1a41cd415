"""``from_module``: a user's ``torch.nn.Module`` -> a ``graph`` architecture and its weights.

Needs ``pip install landscope[torch]``; torch is imported only when called.

The module is traced with ``torch.fx`` and run twice on the example input (in eval mode,
without gradients, once with one sample more) to learn every value's shape and which
values depend on the batch. Each traced call becomes one node of an allow-listed op;
layers keep their module path as node name, so the service's parameters are named
exactly like ``module.state_dict()``.

Example:
    >>> import torch, landscope
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> spec = landscope.from_module(net, torch.zeros(4, 3))
    >>> [n["op"] for n in spec.architecture["nodes"]]
    ['linear', 'tanh', 'linear']
"""

from __future__ import annotations

import importlib
import inspect
import operator
from collections.abc import Callable, Mapping
from typing import Any

from landscope._exceptions import LandscopeError
from landscope._torch import import_torch, state_dict_to_safetensors
from landscope.spec import ModelSpec

__all__ = ["SUPPORTED", "UnsupportedModuleError", "from_module"]

SUPPORTED: dict[str, tuple[str, ...]] = {
    "modules": (
        "Linear", "Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
        "Embedding", "MultiheadAttention(batch_first=True)", "Dropout", "Identity", "Flatten",
        "Unflatten", "MaxPool1d/2d", "AvgPool1d/2d", "AdaptiveAvgPool1d/2d", "ZeroPad2d",
        "ConstantPad1d/2d", "Softmax", "LogSoftmax", "ReLU", "LeakyReLU", "Tanh", "Sigmoid",
        "Softplus", "GELU", "SiLU", "ELU", "SELU", "CELU", "ReLU6", "Hardtanh", "Mish",
        "Hardswish", "Hardsigmoid", "Softsign", "LogSigmoid", "Tanhshrink",
    ),
    "functions": (
        "+", "-", "*", "/", "unary -", "** 2", "torch.add/sub/mul/div", "torch.cat",
        "torch.flatten", "torch.mean/sum", "indexing x[:, a:b:c, i]", "F.pad (constant)",
        "F.<activation>", "F.softmax/log_softmax", "F.dropout", "F.max/avg_pool1d/2d",
        "F.adaptive_avg_pool1d/2d", "F.scaled_dot_product_attention",
    ),
    "methods": (
        "view", "reshape", "flatten", "permute", "transpose", "unsqueeze", "squeeze",
        "contiguous", "mean", "sum", "size", "chunk", "split", "relu", "tanh", "sigmoid",
        "softmax", "log_softmax", "add", "sub", "mul", "div",
    ),
}
"""What ``from_module`` translates (PyTorch names); anything else is refused."""


class UnsupportedModuleError(LandscopeError, ValueError):
    """A module uses an operation the graph architecture cannot express.

    Attributes:
        module_path: where (``"layer2.0"``; ``""`` for the top module).
        operation: what (``"call_method add_"``, ``"nn.LSTM"``).
        hint: what to change.
    """

    def __init__(self, module_path: str, operation: str, hint: str) -> None:
        self.module_path = module_path
        self.operation = operation
        self.hint = hint
        self.supported = SUPPORTED
        where = f"in {module_path!r}" if module_path else "in the top-level module"
        listing = "; ".join(f"{k}: {', '.join(v)}" for k, v in SUPPORTED.items())
        super().__init__(
            f"{operation} {where} is not supported: {hint} Supported operations: {listing}."
        )


_STATEFUL = frozenset({
    "linear", "conv1d", "conv2d", "batchnorm1d", "batchnorm2d", "layernorm", "groupnorm",
    "embedding", "multihead_attention", "parameter", "buffer"})


_ACT_MODULES: dict[str, tuple[str, Callable[[Any], dict[str, Any]]]] = {
    "ReLU": ("relu", lambda m: {}),
    "LeakyReLU": ("leaky_relu", lambda m: {"negative_slope": float(m.negative_slope)}),
    "Tanh": ("tanh", lambda m: {}),
    "Sigmoid": ("sigmoid", lambda m: {}),
    "Softplus": ("softplus", lambda m: {"beta": float(m.beta), "threshold": float(m.threshold)}),
    "GELU": ("gelu", lambda m: {"approximate": str(m.approximate)}),
    "SiLU": ("silu", lambda m: {}),
    "ELU": ("elu", lambda m: {"alpha": float(m.alpha)}),
    "SELU": ("selu", lambda m: {}),
    "CELU": ("celu", lambda m: {"alpha": float(m.alpha)}),
    "ReLU6": ("relu6", lambda m: {}),
    "Hardtanh": ("hardtanh", lambda m: {"min_val": float(m.min_val),
                                        "max_val": float(m.max_val)}),
    "Mish": ("mish", lambda m: {}),
    "Hardswish": ("hardswish", lambda m: {}),
    "Hardsigmoid": ("hardsigmoid", lambda m: {}),
    "Softsign": ("softsign", lambda m: {}),
    "LogSigmoid": ("logsigmoid", lambda m: {}),
    "Tanhshrink": ("tanhshrink", lambda m: {}),
    "Identity": ("identity", lambda m: {}),
}
# F.<name>(input, *args): op, names of the extra positional args with defaults
_ACT_FUNCTIONS: dict[str, tuple[str, tuple[tuple[str, Any], ...]]] = {
    "relu": ("relu", (("inplace", False),)),
    "leaky_relu": ("leaky_relu", (("negative_slope", 0.01), ("inplace", False))),
    "tanh": ("tanh", ()),
    "sigmoid": ("sigmoid", ()),
    "softplus": ("softplus", (("beta", 1.0), ("threshold", 20.0))),
    "gelu": ("gelu", (("approximate", "none"),)),
    "silu": ("silu", (("inplace", False),)),
    "elu": ("elu", (("alpha", 1.0), ("inplace", False))),
    "selu": ("selu", (("inplace", False),)),
    "celu": ("celu", (("alpha", 1.0), ("inplace", False))),
    "relu6": ("relu6", (("inplace", False),)),
    "hardtanh": ("hardtanh", (("min_val", -1.0), ("max_val", 1.0), ("inplace", False))),
    "mish": ("mish", (("inplace", False),)),
    "hardswish": ("hardswish", (("inplace", False),)),
    "hardsigmoid": ("hardsigmoid", (("inplace", False),)),
    "softsign": ("softsign", ()),
    "logsigmoid": ("logsigmoid", ()),
    "tanhshrink": ("tanhshrink", ()),
}
_ACT_ATTRS = {"negative_slope", "beta", "threshold", "approximate", "alpha", "min_val", "max_val"}


def _bind(args: tuple[Any, ...], kwargs: Mapping[str, Any],
          names: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """Bind positional ``args`` and ``kwargs`` to ``names`` (name, default) pairs."""
    out = {name: default for name, default in names}
    for (name, _), value in zip(names, args, strict=False):
        out[name] = value
    for key, value in kwargs.items():
        out[key] = value
    return out


def _pair_list(value: Any, n: int) -> list[int]:
    if isinstance(value, int):
        return [value] * n
    return [int(v) for v in value]


class _Translator:
    """One fx graph -> the JSON graph."""

    def __init__(self, torch: Any, module: Any, gm: Any, run1: dict[Any, Any],
                 run2: dict[Any, Any], batch: int) -> None:
        self.torch = torch
        self.module = module
        self.gm = gm
        self.run1 = run1
        self.run2 = run2
        self.batch = batch
        self.nodes: list[dict[str, Any]] = []
        self.names: dict[Any, str] = {}  # fx node -> JSON value name
        self.used_modules: set[str] = set()
        self.state_keys: list[str] = []
        self.taken: set[str] = set()
        self.params = dict(module.named_parameters())
        self.buffers = dict(module.named_buffers())
        self.order = {n: i for i, n in enumerate(gm.graph.nodes)}
        self.depends: dict[Any, bool] = {}

    # ------------------------------------------------------------------ helpers
    def where(self, node: Any) -> str:
        if node.op == "call_module":
            return str(node.target)
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return ""
        last = list(stack.values())[-1]
        return str(last[0] if isinstance(last, tuple) else list(stack)[-1])

    def fail(self, node: Any, operation: str, hint: str) -> UnsupportedModuleError:
        return UnsupportedModuleError(self.where(node), operation, hint)

    def describe(self, node: Any) -> str:
        if node.op == "call_module":
            return f"nn.{type(self.gm.get_submodule(node.target)).__name__}"
        if node.op == "call_method":
            return f"the method .{node.target}()"
        if node.op == "call_function":
            name = getattr(node.target, "__name__", str(node.target))
            mod = getattr(node.target, "__module__", "") or ""
            return f"the function {mod + '.' if mod else ''}{name}"
        return f"{node.op} {node.target}"

    def is_tensor(self, node: Any) -> bool:
        return isinstance(self.run1.get(node), self.torch.Tensor)

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.taken:
            name = f"{base}_{k}"
            k += 1
        self.taken.add(name)
        return name

    def emit(self, node: Any, op: str, inputs: list[str], attrs: dict[str, Any] | None = None,
             *, name: str | None = None, module: str | None = None) -> str:
        json_name = name if name is not None else self.unique(str(node.name))
        entry: dict[str, Any] = {"name": json_name, "op": op, "inputs": inputs}
        if attrs:
            entry["attrs"] = attrs
        if module is not None and module != json_name:
            entry["module"] = module
        self.nodes.append(entry)
        return json_name

    def static(self, node: Any, value: Any, what: str) -> Any:
        """A non-tensor argument's value; it must not depend on the batch size."""
        if not hasattr(value, "op") or not hasattr(value, "users"):
            if isinstance(value, tuple | list):
                return type(value)(self.static(node, v, what) for v in value)
            return value
        if value.op == "get_attr" or self.is_tensor(value):
            raise self.fail(node, self.describe(node),
                            f"its {what} is a tensor; it must be a plain number.")
        v1, v2 = self.run1.get(value), self.run2.get(value)
        if v1 != v2:
            raise self.fail(node, self.describe(node),
                            f"its {what} ({v1}) depends on the batch size; only the batch "
                            "dimension may vary, so use shapes that do not involve it.")
        return v1

    def ref(self, node: Any, arg: Any) -> str:
        """The JSON name of a tensor argument (emitting parameter/buffer nodes on demand)."""
        if not (hasattr(arg, "op") and hasattr(arg, "users")):
            raise self.fail(node, self.describe(node),
                            f"expected a tensor argument, got {arg!r}.")
        if arg in self.names:
            return self.names[arg]
        if arg.op == "get_attr":
            target = str(arg.target)
            if target in self.params:
                op = "parameter"
            elif target in self.buffers:
                op = "buffer"
            else:
                raise self.fail(node, f"the tensor attribute {target!r}",
                                "register it as an nn.Parameter or a buffer "
                                "(register_buffer) so its values travel with the weights.")
            value = self.run1[arg]
            if not value.is_floating_point():
                raise self.fail(node, f"the integer tensor {target!r}",
                                "only floating-point parameters and buffers are supported.")
            self.taken.add(target)
            self.state_keys.append(target)
            self.names[arg] = self.emit(arg, op, [], {"shape": list(value.shape)}, name=target)
            return self.names[arg]
        if self.is_tensor(arg) and not self.depends.get(arg, False):
            raise self.fail(node, self.describe(arg),
                            "it makes a tensor that does not come from the input (a constant); "
                            "register constants as buffers, or pass causal masks as "
                            "is_causal=True.")
        raise self.fail(arg, self.describe(arg), "this operation is not supported.")

    def alias(self, node: Any, src: Any) -> None:
        self.names[node] = self.ref(node, src)

    def check_batch(self, node: Any) -> None:
        v1: Any = self.run1.get(node)
        v2: Any = self.run2.get(node)
        if not isinstance(v1, self.torch.Tensor) or not self.depends.get(node, False):
            return
        ok = (v1.dim() >= 1 and v2.dim() == v1.dim() and v1.shape[0] == self.batch
              and v2.shape[0] == self.batch + 1 and v1.shape[1:] == v2.shape[1:])
        if not ok:
            raise self.fail(node, self.describe(node),
                            f"it turns the batch of shape {tuple(v1.shape)} into one where "
                            "the batch is no longer the first dimension (or mixes it with "
                            "others); every value must keep the batch as dimension 0.")

    def inplace_ok(self, node: Any, src: Any) -> None:
        later = [u for u in src.users if u is not node and self.order[u] > self.order[node]]
        if later:
            raise self.fail(node, f"{self.describe(node)} with inplace=True",
                            f"it overwrites a value that {later[0].name!r} uses later; set "
                            "inplace=False.")

    # ------------------------------------------------------------------ translation
    def run(self) -> tuple[dict[str, Any], list[str]]:
        torch = self.torch
        placeholder = None
        output_name = None
        # first uses of modules own their path as name
        for node in self.gm.graph.nodes:
            if node.op in ("call_module", "get_attr"):
                self.taken.add(str(node.target))
        for node in self.gm.graph.nodes:
            self.depends[node] = node.op == "placeholder" or any(
                self.depends.get(a, False) for a in node.all_input_nodes
            )
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if placeholder is not None:
                    raise self.fail(node, f"a second forward argument {node.name!r}",
                                    "forward must take exactly one tensor (give the others "
                                    "defaults, or fold them into the module).")
                placeholder = node
                self.names[node] = self.unique(str(node.name))
                continue
            if node.op == "output":
                out = node.args[0]
                if not (hasattr(out, "op") and self.is_tensor(out)):
                    raise self.fail(node, "returning " + type(self.run1.get(out)).__name__,
                                    "forward must return one tensor of shape (batch, r).")
                output_name = self.ref(node, out)
                continue
            if node.op == "get_attr" or not self.depends[node]:
                continue  # parameters are emitted where used; constants are read as values
            value = self.run1.get(node)
            if isinstance(value, tuple | list) and any(
                isinstance(v, torch.Tensor) for v in value
            ):
                if node.op == "call_module":
                    self.call_module(node)  # multihead attention: (output, weights)
                elif not self.is_split(node):
                    raise self.fail(node, self.describe(node),
                                    "it returns several tensors; only chunk and split do.")
                continue  # chunk/split pieces are read by getitem
            if not isinstance(value, torch.Tensor):
                continue  # sizes and shapes: read by the ops that use them
            self.check_batch(node)
            if node.op == "call_module":
                self.call_module(node)
            elif node.op == "call_function":
                self.call_function(node)
            elif node.op == "call_method":
                self.call_method(node)
        if placeholder is None or output_name is None:
            raise UnsupportedModuleError("", "a forward without input or output",
                                         "forward must take one tensor and return one.")
        x = self.run1[placeholder]
        arch = {
            "type": "graph",
            "input": {
                "name": self.names[placeholder],
                "shape": list(x.shape[1:]),
                "dtype": "float" if x.is_floating_point() else "int64",
            },
            "nodes": self.nodes,
            "output": output_name,
        }
        owned = [n["name"] for n in self.nodes if n["op"] in _STATEFUL and "module" not in n]
        rank = {name: float(i) for i, (name, _) in enumerate(self.module.named_modules())}

        def position(name: str) -> float:
            if name in rank:
                return rank[name]
            return rank.get(name.rpartition(".")[0], 0.0) + 0.5  # a parameter or buffer

        order = sorted(owned, key=position)
        if order != owned:
            arch["module_order"] = order
        return arch, self.state_keys

    def module_node(self, node: Any, op: str, inputs: list[str], attrs: dict[str, Any],
                    *, has_state: bool) -> None:
        target = str(node.target)
        if has_state:
            first = target not in self.used_modules
            self.used_modules.add(target)
            if first:
                self.state_keys.extend(
                    f"{target}.{k}" for k in self.gm.get_submodule(target).state_dict()
                )
                self.names[node] = self.emit(node, op, inputs, attrs, name=target)
            else:
                self.names[node] = self.emit(node, op, inputs, attrs, module=target)
            return
        first = target not in self.used_modules
        self.used_modules.add(target)
        self.names[node] = self.emit(node, op, inputs, attrs, name=target if first else None)

    def call_module(self, node: Any) -> None:
        torch = self.torch
        nn = torch.nn
        mod = self.gm.get_submodule(node.target)
        cls = type(mod).__name__
        args = list(node.args)
        if node.kwargs and not isinstance(mod, nn.MultiheadAttention):
            raise self.fail(node, f"nn.{cls} called with keyword arguments",
                            "pass the input positionally.")
        if isinstance(mod, nn.MultiheadAttention):
            self.attention(node, mod)
            return
        if len(args) != 1:
            raise self.fail(node, f"nn.{cls} with {len(args)} inputs", "pass one tensor.")
        src = self.ref(node, args[0])
        if cls in _ACT_MODULES and type(mod).__module__.startswith("torch.nn"):
            if getattr(mod, "inplace", False):
                self.inplace_ok(node, args[0])
            op, attrs_of = _ACT_MODULES[cls]
            self.module_node(node, op, [src], attrs_of(mod), has_state=False)
            return
        if isinstance(mod, nn.Linear):
            self.module_node(node, "linear", [src], {"out_features": mod.out_features,
                                                     "bias": mod.bias is not None},
                             has_state=True)
        elif isinstance(mod, nn.Conv1d | nn.Conv2d) and type(mod) in (nn.Conv1d, nn.Conv2d):
            nd = 1 if isinstance(mod, nn.Conv1d) else 2
            if mod.padding_mode != "zeros":
                raise self.fail(node, f"nn.{cls}(padding_mode={mod.padding_mode!r})",
                                "only zero padding is supported; use padding_mode='zeros' "
                                "or an explicit F.pad.")
            padding = mod.padding
            if isinstance(padding, str):
                padding = self.same_padding(node, mod, padding)
            self.module_node(node, f"conv{nd}d", [src], {
                "out_channels": mod.out_channels, "kernel_size": list(mod.kernel_size),
                "stride": list(mod.stride), "padding": list(padding),
                "dilation": list(mod.dilation), "groups": mod.groups,
                "bias": mod.bias is not None}, has_state=True)
        elif isinstance(mod, nn.BatchNorm1d | nn.BatchNorm2d):
            if not mod.track_running_stats:
                raise self.fail(node, f"nn.{cls}(track_running_stats=False)",
                                "its output depends on how samples are batched; use "
                                "track_running_stats=True (the service normalises with the "
                                "running statistics, as in eval mode).")
            nd = 1 if isinstance(mod, nn.BatchNorm1d) else 2
            self.module_node(node, f"batchnorm{nd}d", [src], {
                "eps": float(mod.eps), "affine": bool(mod.affine)}, has_state=True)
        elif isinstance(mod, nn.LayerNorm):
            self.module_node(node, "layernorm", [src], {
                "normalized_shape": list(mod.normalized_shape), "eps": float(mod.eps),
                "elementwise_affine": bool(mod.elementwise_affine),
                "bias": getattr(mod, "bias", None) is not None}, has_state=True)
        elif isinstance(mod, nn.GroupNorm):
            self.module_node(node, "groupnorm", [src], {
                "num_groups": mod.num_groups, "eps": float(mod.eps),
                "affine": bool(mod.affine)}, has_state=True)
        elif isinstance(mod, nn.Embedding):
            if mod.max_norm is not None or mod.scale_grad_by_freq:
                raise self.fail(node, "nn.Embedding(max_norm=..., scale_grad_by_freq=...)",
                                "max_norm renormalises the weights in place and "
                                "scale_grad_by_freq changes the gradient; leave both off.")
            self.module_node(node, "embedding", [src], {
                "num_embeddings": mod.num_embeddings, "embedding_dim": mod.embedding_dim,
                "padding_idx": mod.padding_idx}, has_state=True)
        elif isinstance(mod, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.AlphaDropout):
            self.module_node(node, "dropout", [src], {"p": float(mod.p)}, has_state=False)
        elif isinstance(mod, nn.Flatten):
            self.module_node(node, "flatten", [src], {"start_dim": mod.start_dim,
                                                      "end_dim": mod.end_dim}, has_state=False)
        elif isinstance(mod, nn.Unflatten):
            self.module_node(node, "reshape", [src], {"shape": self.out_shape(node)},
                             has_state=False)
        elif isinstance(mod, nn.Softmax | nn.LogSoftmax):
            if mod.dim is None:
                raise self.fail(node, f"nn.{cls}(dim=None)", "give dim explicitly.")
            op = "softmax" if isinstance(mod, nn.Softmax) else "log_softmax"
            self.module_node(node, op, [src], {"dim": mod.dim}, has_state=False)
        elif isinstance(mod, nn.MaxPool1d | nn.MaxPool2d):
            nd = 1 if isinstance(mod, nn.MaxPool1d) else 2
            if mod.return_indices:
                raise self.fail(node, f"nn.{cls}(return_indices=True)", "set it to False.")
            self.module_node(node, f"max_pool{nd}d", [src], {
                "kernel_size": _pair_list(mod.kernel_size, nd),
                "stride": _pair_list(mod.stride or mod.kernel_size, nd),
                "padding": _pair_list(mod.padding, nd), "dilation": _pair_list(mod.dilation, nd),
                "ceil_mode": bool(mod.ceil_mode)}, has_state=False)
        elif isinstance(mod, nn.AvgPool1d | nn.AvgPool2d):
            nd = 1 if isinstance(mod, nn.AvgPool1d) else 2
            if getattr(mod, "divisor_override", None) is not None:
                raise self.fail(node, f"nn.{cls}(divisor_override=...)", "leave it None.")
            self.module_node(node, f"avg_pool{nd}d", [src], {
                "kernel_size": _pair_list(mod.kernel_size, nd),
                "stride": _pair_list(mod.stride or mod.kernel_size, nd),
                "padding": _pair_list(mod.padding, nd), "ceil_mode": bool(mod.ceil_mode),
                "count_include_pad": bool(mod.count_include_pad)}, has_state=False)
        elif isinstance(mod, nn.AdaptiveAvgPool1d | nn.AdaptiveAvgPool2d):
            nd = 1 if isinstance(mod, nn.AdaptiveAvgPool1d) else 2
            size = mod.output_size
            sizes = [size] * nd if isinstance(size, int) or size is None else list(size)
            self.module_node(node, f"adaptive_avg_pool{nd}d", [src],
                             {"output_size": sizes}, has_state=False)
        elif isinstance(mod, nn.ZeroPad2d | nn.ConstantPad1d | nn.ConstantPad2d):
            self.module_node(node, "pad", [src], {"pad": list(mod.padding),
                                                  "value": float(getattr(mod, "value", 0.0))},
                             has_state=False)
        else:
            hint = "write it out with supported layers"
            if isinstance(mod, nn.TransformerEncoderLayer | nn.TransformerDecoderLayer |
                          nn.TransformerEncoder | nn.Transformer):
                hint = ("write the block out with nn.MultiheadAttention(batch_first=True), "
                        "nn.LayerNorm, nn.Linear and an activation")
            raise self.fail(node, f"nn.{cls}", f"{hint}.")

    def same_padding(self, node: Any, mod: Any, padding: str) -> list[int]:
        if padding == "valid":
            return [0] * len(mod.kernel_size)
        out = []
        for k, d in zip(mod.kernel_size, mod.dilation, strict=True):
            total = d * (k - 1)
            if total % 2:
                raise self.fail(node, f"nn.{type(mod).__name__}(padding='same') with an even "
                                "kernel", "'same' then pads asymmetrically; use explicit "
                                "F.pad and padding=0.")
            out.append(total // 2)
        return out

    def out_shape(self, node: Any) -> list[int]:
        return [int(s) for s in self.run1[node].shape[1:]]

    def is_split(self, node: Any) -> bool:
        torch = self.torch
        if node.op == "call_method":
            return str(node.target) in ("chunk", "split")
        return node.op == "call_function" and node.target in (torch.chunk, torch.split)

    def attention(self, node: Any, mod: Any) -> None:
        if not mod.batch_first:
            raise self.fail(node, "nn.MultiheadAttention(batch_first=False)",
                            "construct it with batch_first=True and pass (batch, length, "
                            "embed) tensors.")
        if (not mod._qkv_same_embed_dim or mod.bias_k is not None or mod.add_zero_attn):
            raise self.fail(node, "nn.MultiheadAttention(kdim/vdim/add_bias_kv/add_zero_attn)",
                            "use the defaults (kdim = vdim = embed_dim, no extra bias, "
                            "add_zero_attn=False).")
        b = _bind(tuple(node.args), node.kwargs, (
            ("query", None), ("key", None), ("value", None), ("key_padding_mask", None),
            ("need_weights", True), ("attn_mask", None), ("average_attn_weights", True),
            ("is_causal", False)))
        if b["key_padding_mask"] is not None:
            raise self.fail(node, "nn.MultiheadAttention(key_padding_mask=...)",
                            "padding masks are not supported; use sequences of equal length.")
        causal = bool(self.static(node, b["is_causal"], "is_causal"))
        mask = b["attn_mask"]
        if mask is not None:
            causal = self.causal_mask(node, mask) or causal
        for user in node.users:
            if not (user.op == "call_function" and user.target is operator.getitem
                    and user.args[1] == 0):
                raise self.fail(user, "using the attention weights of nn.MultiheadAttention",
                                "only the attention output (result[0]) is supported.")
        q, k, v = b["query"], b["key"], b["value"]
        inputs = [self.ref(node, q)] if q is k and k is v else [
            self.ref(node, q), self.ref(node, k), self.ref(node, v)]
        self.module_node(node, "multihead_attention", inputs, {
            "num_heads": mod.num_heads, "bias": mod.in_proj_bias is not None,
            "causal": causal}, has_state=True)

    def causal_mask(self, node: Any, mask: Any) -> bool:
        torch = self.torch
        value = self.run1.get(mask) if hasattr(mask, "op") else mask
        if not isinstance(value, torch.Tensor) or value.dim() != 2 or (
            hasattr(mask, "op") and self.depends.get(mask, False)
        ):
            raise self.fail(node, "an attention mask", "only a causal (lower-triangular) mask "
                            "is supported; pass is_causal=True or a square subsequent mask.")
        n = value.shape[0]
        upper = torch.ones(n, n, dtype=torch.bool).triu(1)
        if value.dtype == torch.bool:
            ok = bool((value == upper).all())
        else:
            ok = bool(torch.isneginf(value[upper]).all()) and bool((value[~upper] == 0).all())
        if not ok:
            raise self.fail(node, "an attention mask that is not causal",
                            "only a causal mask (-inf or True above the diagonal) is "
                            "supported.")
        return True

    def arith(self, node: Any, op: str, a: Any, b: Any) -> None:
        a_t = hasattr(a, "op") and (self.is_tensor(a) or a.op == "get_attr")
        b_t = hasattr(b, "op") and (self.is_tensor(b) or b.op == "get_attr")
        if a_t and b_t:
            self.names[node] = self.emit(node, op, [self.ref(node, a), self.ref(node, b)])
            return
        if a_t:
            s = float(self.static(node, b, "scalar operand"))
            self.names[node] = self.emit(node, op, [self.ref(node, a)], {"scalar": s})
            return
        s = float(self.static(node, a, "scalar operand"))
        src = self.ref(node, b)
        if op in ("add", "mul"):
            self.names[node] = self.emit(node, op, [src], {"scalar": s})
        elif op == "sub":  # s - x = (-1) * x + s
            neg = self.emit(node, "mul", [src], {"scalar": -1.0},
                            name=self.unique(f"{node.name}_neg"))
            self.names[node] = self.emit(node, "add", [neg], {"scalar": s})
        else:
            raise self.fail(node, "a number divided by a tensor",
                            "write it as x ** -1 is not supported either; divide tensors by "
                            "numbers or by other tensors.")

    def act(self, node: Any, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        op, extra = _ACT_FUNCTIONS[name]
        b = _bind(tuple(args[1:]), kwargs, extra)
        if b.get("inplace"):
            self.inplace_ok(node, args[0])
        attrs = {k: self.static(node, v, k) for k, v in b.items() if k in _ACT_ATTRS}
        attrs = {k: (float(v) if not isinstance(v, str) else v) for k, v in attrs.items()}
        self.names[node] = self.emit(node, op, [self.ref(node, args[0])], attrs)

    def call_function(self, node: Any) -> None:
        torch = self.torch
        F = torch.nn.functional
        t, args, kw = node.target, node.args, node.kwargs
        arith = {operator.add: "add", operator.sub: "sub", operator.mul: "mul",
                 operator.truediv: "div", torch.add: "add", torch.sub: "sub", torch.mul: "mul",
                 torch.div: "div"}
        if t in arith:
            if kw.get("alpha", 1) != 1 or kw.get("rounding_mode") is not None:
                raise self.fail(node, self.describe(node), "alpha and rounding_mode are not "
                                "supported; scale the operand instead.")
            self.arith(node, arith[t], args[0], args[1] if len(args) > 1 else kw["other"])
            return
        if t in (operator.neg, torch.neg):
            self.names[node] = self.emit(node, "mul", [self.ref(node, args[0])],
                                         {"scalar": -1.0})
            return
        if t in (operator.pow, torch.pow) and self.static(node, args[1], "exponent") == 2:
            self.names[node] = self.emit(node, "quadratic", [self.ref(node, args[0])])
            return
        if t is torch.square:
            self.names[node] = self.emit(node, "quadratic", [self.ref(node, args[0])])
            return
        for name in _ACT_FUNCTIONS:
            if t is getattr(F, name, None) or t is getattr(torch, name, None):
                self.act(node, name, args, kw)
                return
        if t in (F.softmax, F.log_softmax, torch.softmax, torch.log_softmax):
            b = _bind(tuple(args), kw, (("input", None), ("dim", None)))
            if b["dim"] is None or kw.get("dtype") is not None:
                raise self.fail(node, self.describe(node), "give dim and no dtype.")
            op = "softmax" if t in (F.softmax, torch.softmax) else "log_softmax"
            self.names[node] = self.emit(node, op, [self.ref(node, args[0])],
                                         {"dim": int(self.static(node, b["dim"], "dim"))})
            return
        if t in (F.dropout, F.dropout1d, F.dropout2d, F.alpha_dropout, torch.dropout):
            b = _bind(tuple(args), kw, (("input", None), ("p", 0.5)))
            self.names[node] = self.emit(node, "dropout", [self.ref(node, args[0])],
                                         {"p": float(self.static(node, b["p"], "p"))})
            return
        if t is torch.flatten:
            b = _bind(tuple(args), kw, (("input", None), ("start_dim", 0), ("end_dim", -1)))
            self.names[node] = self.emit(node, "flatten", [self.ref(node, args[0])], {
                "start_dim": int(self.static(node, b["start_dim"], "start_dim")),
                "end_dim": int(self.static(node, b["end_dim"], "end_dim"))})
            return
        if t is torch.cat or t is torch.concat:
            b = _bind(tuple(args), kw, (("tensors", None), ("dim", 0)))
            self.names[node] = self.emit(node, "cat", [self.ref(node, a) for a in b["tensors"]],
                                         {"dim": int(self.static(node, b["dim"], "dim"))})
            return
        if t in (torch.mean, torch.sum):
            self.reduce(node, "mean" if t is torch.mean else "sum", args, kw)
            return
        if t is F.pad:
            b = _bind(tuple(args), kw, (("input", None), ("pad", None), ("mode", "constant"),
                                        ("value", None)))
            if b["mode"] != "constant":
                raise self.fail(node, f"F.pad(mode={b['mode']!r})",
                                "only constant padding is supported.")
            value = self.static(node, b["value"], "value")
            self.names[node] = self.emit(node, "pad", [self.ref(node, args[0])], {
                "pad": [int(p) for p in self.static(node, b["pad"], "pad")],
                "value": float(value or 0.0)})
            return
        pools = {F.max_pool1d: ("max", 1), F.max_pool2d: ("max", 2), F.avg_pool1d: ("avg", 1),
                 F.avg_pool2d: ("avg", 2)}
        if t in pools:
            self.pool(node, *pools[t])
            return
        if t in (F.adaptive_avg_pool1d, F.adaptive_avg_pool2d):
            nd = 1 if t is F.adaptive_avg_pool1d else 2
            b = _bind(tuple(args), kw, (("input", None), ("output_size", None)))
            size = self.static(node, b["output_size"], "output_size")
            sizes = [size] * nd if isinstance(size, int) or size is None else list(size)
            self.names[node] = self.emit(node, f"adaptive_avg_pool{nd}d",
                                         [self.ref(node, args[0])], {"output_size": sizes})
            return
        if t is F.scaled_dot_product_attention:
            b = _bind(tuple(args), kw, (("query", None), ("key", None), ("value", None),
                                        ("attn_mask", None), ("dropout_p", 0.0),
                                        ("is_causal", False), ("scale", None)))
            causal = bool(self.static(node, b["is_causal"], "is_causal"))
            if b["attn_mask"] is not None:
                causal = self.causal_mask(node, b["attn_mask"]) or causal
            scale = self.static(node, b["scale"], "scale")
            self.names[node] = self.emit(
                node, "scaled_dot_product_attention",
                [self.ref(node, b["query"]), self.ref(node, b["key"]), self.ref(node, b["value"])],
                {"causal": causal, "scale": None if scale is None else float(scale)})
            return
        if t is operator.getitem:
            self.getitem(node)
            return
        raise self.fail(node, self.describe(node), "this function has no graph op; see the "
                        "supported list.")

    def pool(self, node: Any, kind: str, nd: int) -> None:
        names: tuple[tuple[str, Any], ...] = (
            ("input", None), ("kernel_size", None), ("stride", None), ("padding", 0))
        if kind == "max":
            names += (("dilation", 1), ("ceil_mode", False), ("return_indices", False))
        else:
            names += (("ceil_mode", False), ("count_include_pad", True),
                      ("divisor_override", None))
        b = _bind(tuple(node.args), node.kwargs, names)
        b = {k: (self.static(node, v, k) if k != "input" else v) for k, v in b.items()}
        if b.get("return_indices") or b.get("divisor_override") is not None:
            raise self.fail(node, self.describe(node),
                            "return_indices and divisor_override are not supported.")
        k = _pair_list(b["kernel_size"], nd)
        attrs: dict[str, Any] = {
            "kernel_size": k, "stride": _pair_list(b["stride"] or k, nd),
            "padding": _pair_list(b["padding"], nd), "ceil_mode": bool(b["ceil_mode"])}
        if kind == "max":
            attrs["dilation"] = _pair_list(b["dilation"], nd)
        else:
            attrs["count_include_pad"] = bool(b["count_include_pad"])
        self.names[node] = self.emit(node, f"{kind}_pool{nd}d", [self.ref(node, b["input"])],
                                     attrs)

    def reduce(self, node: Any, op: str, args: tuple[Any, ...], kw: Mapping[str, Any]) -> None:
        b = _bind(tuple(args), kw, (("input", None), ("dim", None), ("keepdim", False)))
        if kw.get("dtype") is not None:
            raise self.fail(node, self.describe(node), "dtype= is not supported.")
        dim = self.static(node, b["dim"], "dim")
        if dim is None:
            raise self.fail(node, f"{op} over all dimensions",
                            "give dim (the batch dimension 0 must not be reduced).")
        dims = [int(dim)] if isinstance(dim, int) else [int(d) for d in dim]
        self.names[node] = self.emit(node, op, [self.ref(node, b["input"])], {
            "dims": dims, "keepdim": bool(self.static(node, b["keepdim"], "keepdim"))})

    def getitem(self, node: Any) -> None:
        torch = self.torch
        src, index = node.args
        src_value: Any = self.run1.get(src)
        if hasattr(src, "op") and src.op == "call_module" and isinstance(
            self.gm.get_submodule(src.target), torch.nn.MultiheadAttention
        ):
            self.names[node] = self.names[src]
            return
        if isinstance(src_value, tuple | list):  # chunk / split pieces
            self.piece(node, src, int(index))
            return
        if not isinstance(index, tuple):
            index = (index,)
        if any(hasattr(i, "op") for i in index if not isinstance(i, slice)):
            raise self.fail(node, "indexing with a tensor or a computed index",
                            "only constant integers and slices are supported.")
        rank = src_value.dim()
        n_real = sum(1 for i in index if i is not None and i is not Ellipsis)
        entries: list[Any] = []
        for i in index:
            if i is Ellipsis:
                entries.extend([slice(None)] * (rank - n_real))
            elif i is not None:
                entries.append(i)
        if not entries or entries[0] != slice(None):
            raise self.fail(node, "indexing the batch dimension",
                            "keep the batch whole: index as x[:, ...].")
        spec: list[Any] = []
        for e in entries[1:]:
            if isinstance(e, slice):
                parts = [self.static(node, p, "slice bound") for p in (e.start, e.stop, e.step)]
                spec.append(parts)
            else:
                spec.append(int(self.static(node, e, "index")))
        while spec and spec[-1] == [None, None, None]:
            spec.pop()
        name = self.ref(node, src)
        if spec:
            name = self.emit(node, "slice", [name], {"index": spec})
        if list(self.out_shape(node)) != self.shape_after(src_value, spec):
            name = self.emit(node, "reshape", [name], {"shape": self.out_shape(node)},
                             name=self.unique(f"{node.name}_reshape"))
        self.names[node] = name

    def shape_after(self, value: Any, spec: list[Any]) -> list[int]:
        out = []
        for i, size in enumerate(value.shape[1:]):
            if i < len(spec):
                e = spec[i]
                if isinstance(e, int):
                    continue
                out.append(len(range(*slice(*e).indices(int(size)))))
            else:
                out.append(int(size))
        return out

    def piece(self, node: Any, src: Any, i: int) -> None:
        pieces = self.run1[src]
        b = _bind(tuple(src.args[1:]), src.kwargs, (("size", None), ("dim", 0)))
        dim = int(self.static(src, b["dim"], "dim"))
        d = dim if dim >= 0 else pieces[0].dim() + dim
        if d == 0:
            raise self.fail(src, self.describe(src), "it splits the batch dimension.")
        start = sum(int(p.shape[d]) for p in pieces[:i])
        stop = start + int(pieces[i].shape[d])
        spec: list[Any] = [[None, None, None]] * (d - 1) + [[start, stop, 1]]
        self.names[node] = self.emit(node, "slice", [self.ref(src, src.args[0])],
                                     {"index": spec})

    def call_method(self, node: Any) -> None:
        m, args, kw = str(node.target), node.args, node.kwargs
        if m.endswith("_") and not m.startswith("_"):
            plain = m[:-1]
            raise self.fail(node, f"the in-place method .{m}()",
                            f"replace x.{m}(y) with x = x.{plain}(y) (or x = x + y), which "
                            "computes the same value out of place.")
        if m in ("contiguous", "clone"):
            self.alias(node, args[0])
            return
        if m in ("float", "double", "to", "type"):
            if self.run1[node].dtype == self.run1[args[0]].dtype:
                self.alias(node, args[0])
                return
            raise self.fail(node, f"the method .{m}() changing the dtype",
                            "the service chooses the dtype; remove the cast.")
        if m in ("view", "reshape", "unsqueeze", "squeeze", "view_as", "reshape_as"):
            self.names[node] = self.emit(node, "reshape", [self.ref(node, args[0])],
                                         {"shape": self.out_shape(node)})
            return
        if m == "flatten":
            b = _bind(tuple(args[1:]), kw, (("start_dim", 0), ("end_dim", -1)))
            self.names[node] = self.emit(node, "flatten", [self.ref(node, args[0])], {
                "start_dim": int(self.static(node, b["start_dim"], "start_dim")),
                "end_dim": int(self.static(node, b["end_dim"], "end_dim"))})
            return
        if m == "permute":
            dims = args[1] if len(args) == 2 and isinstance(args[1], tuple | list) else args[1:]
            dims = kw.get("dims", dims)
            self.names[node] = self.emit(node, "permute", [self.ref(node, args[0])], {
                "dims": [int(d) for d in self.static(node, list(dims), "dims")]})
            return
        if m == "transpose":
            b = _bind(tuple(args[1:]), kw, (("dim0", None), ("dim1", None)))
            self.names[node] = self.emit(node, "transpose", [self.ref(node, args[0])], {
                "dim0": int(self.static(node, b["dim0"], "dim0")),
                "dim1": int(self.static(node, b["dim1"], "dim1"))})
            return
        if m in ("mean", "sum"):
            self.reduce(node, m, tuple(args), kw)
            return
        if m in ("add", "sub", "mul", "div"):
            self.arith(node, m, args[0], args[1] if len(args) > 1 else kw["other"])
            return
        if m in ("relu", "tanh", "sigmoid"):
            self.names[node] = self.emit(node, m, [self.ref(node, args[0])])
            return
        if m in ("softmax", "log_softmax"):
            b = _bind(tuple(args[1:]), kw, (("dim", None),))
            self.names[node] = self.emit(node, m, [self.ref(node, args[0])],
                                         {"dim": int(self.static(node, b["dim"], "dim"))})
            return
        raise self.fail(node, f"the method .{m}()", "it has no graph op; see the supported "
                        "list.")


def _leaf_modules(torch: Any) -> Callable[[Any, str], bool]:
    nn = torch.nn

    def is_leaf(m: Any, qualname: str) -> bool:
        if isinstance(m, nn.Sequential | nn.ModuleList | nn.ModuleDict):
            return False
        return str(type(m).__module__).startswith(("torch.nn", "torch.ao.nn"))

    return is_leaf


def from_module(module: Any, example_input: Any) -> ModelSpec:
    """Describe a PyTorch module as a ``graph`` architecture with its weights.

    Args:
        module: a ``torch.nn.Module`` whose ``forward`` takes one tensor (batch first)
            and returns ``(batch, r)``; a ``DataParallel`` wrapper is unwrapped.
        example_input: a batch of inputs (float, or int64 token ids), e.g.
            ``torch.zeros(2, 3, 32, 32)``; only its shape and dtype matter (it is run
            through the module in eval mode without gradients).

    Returns:
        A :class:`~landscope.ModelSpec`: ``.architecture`` (the JSON) and ``.weights``
        (safetensors bytes of the state_dict entries the graph uses, under the
        module's own names). Pass it as ``JobRequest(model=spec)``; the client uploads
        the weights once.

    Raises:
        ImportError: torch is not installed.
        TypeError: ``module`` is not a module or ``example_input`` not a tensor.
        UnsupportedModuleError: an operation the graph cannot express; the message
            names the module path, the operation and what to change.
    """
    torch = import_torch()
    fx = importlib.import_module("torch.fx")
    nn = torch.nn
    if isinstance(module, nn.DataParallel | nn.parallel.DistributedDataParallel):
        module = module.module
    if not isinstance(module, nn.Module):
        raise TypeError(f"Expected a torch.nn.Module, got {type(module).__name__}.")
    if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
        raise TypeError(
            "example_input must be a batch tensor of shape (batch, ...), e.g. "
            f"torch.zeros(2, 3, 32, 32); got {type(example_input).__name__}"
            f"{tuple(example_input.shape) if hasattr(example_input, 'shape') else ''}."
        )
    if not (example_input.is_floating_point() or example_input.dtype == torch.long):
        raise TypeError(f"example_input must be floating point or int64 token ids, got "
                        f"{example_input.dtype}.")
    params = list(inspect.signature(module.forward).parameters.values())
    concrete = {p.name: p.default for p in params[1:] if p.default is not inspect.Parameter.empty}
    tracer = fx.Tracer()
    leaf = _leaf_modules(torch)
    tracer.is_leaf_module = leaf
    try:
        graph = tracer.trace(module, concrete_args=concrete or None)
    except Exception as e:  # fx raises many error types while tracing user code
        raise UnsupportedModuleError(
            "", f"tracing {type(module).__name__}.forward with torch.fx ({type(e).__name__}: "
            f"{e})", "torch.fx cannot follow control flow that depends on tensor values (if "
            "or for on a tensor) or non-torch calls on tensors; move such logic out of "
            "forward, or write it with supported operations.") from e
    gm = fx.GraphModule(module, graph)
    batch = int(example_input.shape[0])
    x2 = torch.cat([example_input, example_input[:1]])
    modes = {name: m.training for name, m in module.named_modules()}
    module.eval()
    try:
        run1 = _record(fx, gm, example_input, torch)
        run2 = _record(fx, gm, x2, torch)
    except Exception as e:  # the user's own code failed on the example input
        raise TypeError(
            f"Running {type(module).__name__} on example_input of shape "
            f"{tuple(example_input.shape)} failed ({type(e).__name__}: {e}); pass an input "
            "the module accepts (batch first)."
        ) from e
    finally:
        for name, m in module.named_modules():
            m.training = modes.get(name, m.training)
    arch, keys = _Translator(torch, module, gm, run1, run2, batch).run()
    state = module.state_dict()
    weights = {k: state[k] for k in dict.fromkeys(keys) if k in state}
    unused = tuple(k for k in state if k not in weights)
    return ModelSpec(architecture=arch, weights=state_dict_to_safetensors(weights),
                     unused=unused)


def _record(fx: Any, gm: Any, x: Any, torch: Any) -> dict[Any, Any]:
    values: dict[Any, Any] = {}

    class Recorder(fx.Interpreter):  # type: ignore[misc]
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            values[n] = out
            return out

    with torch.no_grad():
        Recorder(gm).run(x)
    return values

