"""The symbolic pickle walker: a security boundary.

A ``torch.save`` zip file holds its state_dict as a pickle (``archive/data.pkl``).
Unpickling runs arbitrary code, so it is **never unpickled** here: this module walks the
pickle's opcodes with :func:`pickletools.genops` and evaluates them symbolically,
accepting only what a state_dict contains (an ``OrderedDict`` of
``torch._utils._rebuild_tensor_v2`` calls on typed storages). Any other global
(``os.system``, ``builtins.eval``, ...) is rejected by name, and nothing is ever imported
or called. Any opcode a state_dict never needs is rejected too.

Keep this module small and free of other concerns: every change to it is a change to
what an uploaded file may make the service do. It imports neither torch nor numpy.
"""

from __future__ import annotations

import pickletools
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_OPCODES", "STORAGE_DTYPES", "StorageRef", "TensorRef", "symbolic_unpickle"]

STORAGE_DTYPES: dict[str, tuple[str, str]] = {
    # torch storage class: (torch-style dtype name, numpy dtype; "bits16" = bfloat16 bits)
    "DoubleStorage": ("float64", "f8"),
    "FloatStorage": ("float32", "f4"),
    "HalfStorage": ("float16", "f2"),
    "BFloat16Storage": ("bfloat16", "bits16"),
    "LongStorage": ("int64", "i8"),
    "IntStorage": ("int32", "i4"),
    "ShortStorage": ("int16", "i2"),
    "CharStorage": ("int8", "i1"),
    "ByteStorage": ("uint8", "u1"),
    "BoolStorage": ("bool", "?"),
}
MAX_OPCODES = 5_000_000

_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    *(("torch", name) for name in STORAGE_DTYPES),
}
_LITERAL_OPCODES = frozenset(
    {
        "BININT", "BININT1", "BININT2", "INT", "LONG", "LONG1", "LONG4",
        "BINFLOAT", "FLOAT", "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE",
    }
)  # fmt: skip


@dataclass(frozen=True)
class StorageRef:
    """A typed storage the pickle refers to: its entry ``<archive>/data/<key>``."""

    dtype: str
    np_dtype: str
    key: str
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor record of the pickle: a strided view into a storage (nothing loaded)."""

    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]


@dataclass(frozen=True)
class _Global:
    module: str
    name: str


class _Mark:
    pass


_MARK = _Mark()


def _reject_global(module: str, name: str) -> ValueError:
    return ValueError(
        f"The .pt file references {module}.{name}, which a state_dict of tensors never "
        f"contains; it was not loaded. Save model.state_dict() with torch.save, or use "
        f"safetensors."
    )


def _int_tuple(value: Any, what: str) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise ValueError(f"Not a valid state_dict: a tensor's {what} is not a tuple of ints.")
    return value


def _reduce(func: Any, args: Any) -> Any:
    if not isinstance(func, _Global) or not isinstance(args, tuple):
        raise ValueError("Not a valid state_dict: unexpected call in the pickle.")
    key = (func.module, func.name)
    if key == ("collections", "OrderedDict"):
        if args:
            raise ValueError("Not a valid state_dict: OrderedDict built with arguments.")
        return {}
    if key == ("torch._utils", "_rebuild_tensor_v2"):
        if len(args) < 4 or not isinstance(args[0], StorageRef) or not isinstance(args[1], int):
            raise ValueError("Not a valid state_dict: malformed tensor record.")
        return TensorRef(
            args[0], args[1], _int_tuple(args[2], "shape"), _int_tuple(args[3], "stride")
        )
    if key == ("torch._utils", "_rebuild_parameter"):
        if not args or not isinstance(args[0], TensorRef):
            raise ValueError("Not a valid state_dict: malformed parameter record.")
        return args[0]
    raise ValueError(f"Not a valid state_dict: {func.module}.{func.name} called in the pickle.")


def _persistent_load(pid: Any) -> StorageRef:
    if (
        not isinstance(pid, tuple)
        or len(pid) != 5
        or pid[0] != "storage"
        or not isinstance(pid[1], _Global)
        or pid[1].module != "torch"
        or pid[1].name not in STORAGE_DTYPES
        or not isinstance(pid[2], str)
        or not isinstance(pid[4], int)
    ):
        raise ValueError("Not a valid state_dict: unexpected persistent record in the pickle.")
    dtype, np_dtype = STORAGE_DTYPES[pid[1].name]
    return StorageRef(dtype, np_dtype, pid[2], pid[4])


def _setitem(target: Any, key: Any, value: Any) -> None:
    if not isinstance(target, dict):
        raise ValueError("Not a valid state_dict: item set on a non-dict object.")
    if isinstance(key, (dict, list)):
        raise ValueError("Not a valid state_dict: unhashable key.")
    target[key] = value


def symbolic_unpickle(pkl: bytes) -> Any:
    """Evaluate a state_dict pickle symbolically; never imports or calls anything.

    Args:
        pkl: the bytes of ``<archive>/data.pkl`` from a ``torch.save`` zip file.

    Returns:
        The pickled object with plain Python containers, :class:`TensorRef` for tensors
        and :class:`StorageRef` for storages (a state_dict gives ``{name: TensorRef}``).

    Raises:
        ValueError: the pickle references a global other than an ``OrderedDict``, the
            tensor rebuild functions and typed storages (named in the message), uses an
            opcode a state_dict never needs, is malformed, or has more than
            :data:`MAX_OPCODES` opcodes.
    """
    stack: list[Any] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1 :]
                del stack[i:]
                return items
        raise ValueError("Not a valid pickle: MARK missing.")

    try:
        for count, (op, arg, _pos) in enumerate(pickletools.genops(pkl)):
            if count > MAX_OPCODES:
                raise ValueError("The .pt file's pickle is too long for a state_dict.")
            name = op.name
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                if len(stack) != 1:
                    raise ValueError("Not a valid pickle: stack not empty at STOP.")
                return stack[0]
            if name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, gname = str(arg).split(" ", 1)
                else:
                    gname, module = stack.pop(), stack.pop()
                    if not isinstance(module, str) or not isinstance(gname, str):
                        raise ValueError("Not a valid pickle: bad STACK_GLOBAL.")
                if (module, gname) not in _ALLOWED_GLOBALS:
                    raise _reject_global(module, gname)
                stack.append(_Global(module, gname))
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg or 0)] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                stack.append(memo[int(arg or 0)])
            elif name == "MARK":
                stack.append(_MARK)
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "TUPLE":
                stack.append(tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                k = int(name[-1])
                items = stack[-k:]
                del stack[-k:]
                stack.append(tuple(items))
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "DICT":
                items = pop_mark()
                stack.append(dict(zip(items[::2], items[1::2], strict=True)))
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "LIST":
                stack.append(pop_mark())
            elif name == "APPEND":
                value = stack.pop()
                stack[-1].append(value)
            elif name == "APPENDS":
                items = pop_mark()
                stack[-1].extend(items)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                _setitem(stack[-1], key, value)
            elif name == "SETITEMS":
                items = pop_mark()
                for key, value in zip(items[::2], items[1::2], strict=True):
                    _setitem(stack[-1], key, value)
            elif name in _LITERAL_OPCODES:
                stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name == "BINPERSID":
                stack.append(_persistent_load(stack.pop()))
            elif name == "REDUCE":
                args, func = stack.pop(), stack.pop()
                stack.append(_reduce(func, args))
            elif name == "BUILD":
                state = stack.pop()
                if not isinstance(stack[-1], dict) or not isinstance(state, dict):
                    raise ValueError("Not a valid state_dict: BUILD on a non-dict object.")
                # OrderedDict state (``_metadata``) is ignored.
            else:
                raise ValueError(
                    f"The .pt file's pickle uses opcode {name}, which a state_dict never needs."
                )
    except (IndexError, KeyError, TypeError) as e:
        raise ValueError(f"Not a valid state_dict pickle ({type(e).__name__}).") from e
    raise ValueError("Not a valid pickle: no STOP opcode.")
