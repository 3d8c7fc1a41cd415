"""Quickstart section: a 2-D loss surface along filter-normalised random directions.

A 2-32-3 ReLU classifier (init seed 0) on 512 points of three Gaussian classes with
cross-entropy: the service draws two random directions, rescales them filter by filter to
the weights (Li et al. 2018; biases are not moved), makes the second perpendicular to the
first, evaluates the loss and the accuracy on a 41 x 41 grid over [-1, 1]^2 (many points
per forward pass), and reports the slice's minimum and the curvature along each axis. The
contour and surface plots are written to the output folder.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING, Any

from _common import submit_and_wait

from landscope.kinds.landscape_slice import LandscapeSliceResult

if TYPE_CHECKING:
    import landscope


def _request() -> dict[str, Any]:
    return {
        "kind": "landscape_slice",
        "model": {
            "architecture": {"type": "mlp", "input_dim": 2, "hidden": [32], "output_dim": 3,
                             "activation": "relu", "bias": True},
            "init_seed": 0,
        },
        "data": {"synthetic": {"name": "gaussian_classes", "num_samples": 512, "seed": 0}},
        "loss": "cross_entropy",
        "options": {"dims": 2, "directions": "random_filter_normalized",
                    "range": [[-1, 1], [-1, 1]], "resolution": [41, 41], "seed": 0,
                    "orthogonalize": True, "accuracy": True},
        "dtype": "float32",
        "metadata": {"example": "quickstart"},
    }


def run(client: landscope.Client, outdir: pathlib.Path) -> None:
    """Submit the slice, wait with a progress bar, print a summary, save the plots."""
    done = submit_and_wait(client, _request())
    if done is None:
        return
    res = LandscapeSliceResult.from_json(done.result)
    print(f"  {res.num_points} grid points, {res.points_per_pass} per pass, "
          f"{res.pieces} pieces")
    for d in res.directions:
        print(f"  direction {d.name:<9} norm {d.norm:.4g} ({d.relative_norm or 0:.3g} of "
              f"the weights), moves {', '.join(d.nonzero_params)}")
    first = res.directions[0]
    if first.cosine_before_orthogonalization is not None:
        print(f"  cosine between them  {first.cosine_before_orthogonalization:.3g} drawn, "
              f"{first.cosine:.1g} after Gram-Schmidt")
    print(f"  centre loss          {res.centre_loss:.4g}")
    if res.minimum is not None:
        print(f"  slice minimum        {res.minimum.loss:.4g} at alpha {res.minimum.alpha:.3g}, "
              f"beta {res.minimum.beta:.3g}")
    sharp = res.sharpness
    print(f"  curvature at centre  alpha {sharp.alpha.curvature:.4g}"
          + (f", beta {sharp.beta.curvature:.4g}" if sharp.beta is not None else ""))
    acc = res.accuracy_rows()
    if acc is not None:
        mid = acc[len(acc) // 2][len(acc[0]) // 2]  # the grid's centre point
        if mid is not None:
            print(f"  accuracy at centre   {mid:.3f}")
    for warning in res.warnings:
        print(f"  WARNING              {warning}")
    for name in ("contour.png", "surface.png"):
        path = outdir / f"landscape_slice_{name}"
        path.write_bytes(client.jobs.artifact(done.id, name))
        print(f"  plot                 {path}")
