"""Helpers shared by test modules (importable as ``support``)."""

from __future__ import annotations

AUTH_A = {"Authorization": "Bearer key-a"}
AUTH_B = {"Authorization": "Bearer key-b"}


def evaluate_request(num_samples: int = 64, batch_size: int | None = None,
                     seed: int = 0, **extra: object) -> dict[str, object]:
    """A small evaluate job; with batch_size=1 and many samples it runs for seconds."""
    req: dict[str, object] = {
        "kind": "evaluate",
        "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8, 8],
                                   "output_dim": 1, "activation": "tanh", "bias": True},
                  "init_seed": 0},
        "data": {"synthetic": {"name": "teacher_student", "num_samples": num_samples,
                               "seed": seed}},
        "loss": "mse",
        "dtype": "float64",
    }
    if batch_size is not None:
        req["batch_size"] = batch_size
    req.update(extra)
    return req


def block_request(gate: str, **options: object) -> dict[str, object]:
    """A ``test_block`` job (needs ``LANDSCOPE_TEST_KINDS=1`` on the API and worker).

    It runs until the file ``gate`` exists; ``options`` may add ``started`` (a file the
    runner writes its pid to once blocked), ``steps``, ``fail``, ``ignore_cancel``,
    ``poll_s``, ``timeout_s`` (see docs/adding-a-kind.md).
    """
    req = evaluate_request(num_samples=4)
    req["kind"] = "test_block"
    req["options"] = {"gate": gate, **options}
    return req
