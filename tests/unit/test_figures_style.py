"""The shared figure style and the Hessian / manifold figures: each renders as PNG and SVG
at column width with nothing outside the canvas, colours from the palette, captions with
P, N, loss and dtype; the density has no floor and labels its extremes; and each figure's
content (the artists' coordinates) is compared with a stored copy (``figure_data/``), not
its pixels. Regenerate a stored copy after an intended change with
``LANDSCOPE_UPDATE_FIGURE_DATA=1 pytest tests/unit/test_figures_style.py``."""

from __future__ import annotations

import io
import json
import math
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from PIL import Image

from landscope_service.diagnostics.hessian.plots import (
    DYNAMIC_RANGE,
    density_caption,
    density_figure,
)
from landscope_service.diagnostics.manifold.plots import singular_value_figure
from landscope_service.diagnostics.manifold.rank import RankResult
from landscope_service.diagnostics.plots import (
    GREY,
    PALETTE,
    caption_text,
    clipped_texts,
    figure_artifacts,
    figure_data,
    log_axis_wanted,
    new_figure,
    render,
    set_caption,
    styled,
)

DATA = Path(__file__).parent / "figure_data"
OUT = Path(os.environ.get("LANDSCOPE_TEST_OUT", "out/test-figures"))
ALLOWED_COLOURS = {c.lower() for c in PALETTE} | {GREY.lower(), "#000000", "#ffffff"}


def _density_inputs() -> tuple[np.ndarray, np.ndarray, list[float], list[float]]:
    """A two-cluster spectrum with a gap (bulk at 0, outliers near 4) broadened on a grid:
    between the clusters the density falls 40 decades, far below any plotting floor."""
    grid = np.linspace(-1.0, 5.0, 301)
    eig = np.array([-0.5, -0.1, 0.0, 0.0, 0.05, 0.1, 3.9, 4.2])
    sigma = 0.08
    vals = np.exp(-0.5 * ((grid[:, None] - eig[None, :]) / sigma) ** 2).sum(1)
    vals /= eig.size * sigma * math.sqrt(2 * math.pi)
    return grid, vals, [4.2, 3.9], [-0.5, -0.1]


def _density() -> Figure:
    grid, vals, top, bottom = _density_inputs()
    cap = density_caption(exact=True, num_probes=1, steps=8, sigma=0.08, grid_points=301,
                          num_params=8, num_samples=3, loss="mse", dtype="float64")
    return density_figure(grid, vals, top=top, bottom=bottom, caption=cap,
                          label="exact, broadened")


def _rank() -> RankResult:
    s = torch.tensor([3.0, 1.0, 0.2, 1e-14, 0.0], dtype=torch.float64)
    return RankResult(rank=3, singular_values=s, rtol=1e-10, threshold=3e-10,
                      rule="sigma_i > rtol * sigma_max", route="dense", gap_ratio=0.2 / 1e-14)


def _singular() -> Figure:
    cap = caption_text(what="Singular values of J", num_params=12, num_samples=4,
                       loss="mse", dtype="float64", method="dense route")
    return singular_value_figure(_rank(), caption=cap)


def _tree() -> Any:
    from landscope_service.diagnostics.connectivity.mergetree import build_merge_tree

    return build_merge_tree(
        [0.0, 1e-6, 0.5, 0.2],
        [[0.0, 1e-5, 1.0, 0.8], [1e-5, 1e-6, 1.0, 0.9], [1.0, 1.0, 0.5, 0.7],
         [0.8, 0.9, 0.7, 0.2]], tolerance=1e-3)


def _conn_caption(what: str) -> str:
    return caption_text(what=what, num_params=25, num_samples=5, loss="mse",
                        dtype="float64", method="paths: linear, neb")


def _merge_tree() -> Figure:
    from landscope_service.diagnostics.connectivity.plots import merge_tree_figure

    return merge_tree_figure(_tree(), caption=_conn_caption("Disconnectivity graph"))


def _profiles_list() -> list[tuple[str, list[float], list[float]]]:
    ts = np.linspace(0.0, 1.0, 21)
    bump = np.sin(np.pi * ts) ** 2
    return [("0-1 linear", list(ts), list(0.4 * bump)),
            ("0-1 neb", list(ts), list(0.003 * bump)),
            ("0-1 aligned neb", list(ts), list(0.001 * bump))]


def _path_profiles() -> Figure:
    from landscope_service.diagnostics.connectivity.plots import path_profiles_figure

    return path_profiles_figure(_profiles_list(), log=False,
                                caption=_conn_caption("Loss along the MST paths"))


def _slice_grid() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A quadratic bowl 0.1 + a^2 + 4 b^2 on a 9 x 7 grid (spans about two decades)."""
    a = np.linspace(-1.0, 1.0, 9)
    b = np.linspace(-0.5, 0.5, 7)
    return a, b, 0.01 + a[None, :] ** 2 + 4.0 * b[:, None] ** 2


def _slice_caption() -> str:
    return caption_text(what="Loss on a 9 x 7 grid", num_params=25, num_samples=5,
                        loss="mse", dtype="float64", method="directions: random")


def _contour() -> Figure:
    from landscope_service.diagnostics.slice.plots import contour_figure

    a, b, z = _slice_grid()
    return contour_figure(a, b, z, labels=["random 0", "random 1"],
                          minimum={"alpha": 0.0, "beta": 0.0}, caption=_slice_caption())


def _surface() -> Figure:
    from landscope_service.diagnostics.slice.plots import surface_figure

    a, b, z = _slice_grid()
    return surface_figure(a, b, z, labels=["random 0", "random 1"], caption=_slice_caption())


def _profile() -> Figure:
    from landscope_service.diagnostics.slice.plots import profile_figure

    a, _, z = _slice_grid()
    return profile_figure(a, z[3], label="random 0", accuracy=np.linspace(0.2, 0.9, 9),
                          points=[{"alpha": 0.5, "label": "b"}], caption=_slice_caption())


FIGURES: dict[str, Callable[[], Figure]] = {"density": _density,
                                            "singular_values": _singular,
                                            "merge_tree": _merge_tree,
                                            "path_profiles": _path_profiles,
                                            "slice_contour": _contour,
                                            "slice_surface": _surface,
                                            "slice_profile": _profile}


def _render_quietly(fig: Figure) -> tuple[bytes, bytes]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. a collapsed constrained layout
        return render(fig, "png"), render(fig, "svg")


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_renders_in_style(name: str) -> None:
    fig = FIGURES[name]()
    png, svg = _render_quietly(fig)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.png").write_bytes(png)
    (OUT / f"{name}.svg").write_bytes(svg)
    img = Image.open(io.BytesIO(png))
    assert img.size[0] == 680  # 3.4 in (one paper column) at 200 dpi
    assert clipped_texts(fig) == []
    assert b"<svg" in svg and b"<script" not in svg
    # the caption is the figure-level text and names P, N, loss and dtype
    caption = " ".join(t.get_text() for t in fig.texts).replace("\n", " ")
    for fact in ("P = ", "N = ", "loss mse", "float64"):
        assert fact in caption
    # every line colour is from the colour-blind-safe palette (or grey/black)
    for ax in fig.axes:
        for ln in ax.get_lines():
            assert to_hex(ln.get_color()).lower() in ALLOWED_COLOURS, ln.get_label()


def test_clipped_texts_sees_a_clipped_label() -> None:
    """The clip check can fail: a label pushed off the canvas is reported."""
    with styled():
        fig = new_figure()
        ax = fig.add_subplot(1, 1, 1)
        ax.plot([0, 1], [0, 1])
        fig.set_layout_engine("none")
        ax.set_position((-0.3, 0.1, 0.9, 0.8))
        ax.set_ylabel("a label off the left edge")
    assert clipped_texts(fig) != []


def test_caption_is_wrapped_inside_a_narrow_figure() -> None:
    with styled():
        fig = new_figure("column", aspect=0.6)
        fig.add_subplot(1, 1, 1).plot([1, 2], [1, 2])
        set_caption(fig, "word " * 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert clipped_texts(fig) == []
    assert fig.texts[0].get_text().count("\n") >= 3


def test_density_has_no_floor_and_labels_the_extremes() -> None:
    _, vals, top, bottom = _density_inputs()
    fig = _density()
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    (curve,) = [ln for ln in ax.get_lines() if ln.get_label() == "exact, broadened"]
    y = np.asarray(curve.get_ydata(), dtype=np.float64)
    peak = vals.max()
    below = vals < DYNAMIC_RANGE * peak
    assert below.any()  # the gap between the clusters (known answer: ~1e-40 of the peak)
    assert np.all(np.isnan(y[below]))  # not drawn: the curve breaks, no plateau
    np.testing.assert_allclose(y[~below], vals[~below], rtol=0, atol=0)
    lo, _ = ax.get_ylim()
    assert lo == pytest.approx(DYNAMIC_RANGE * peak, rel=1e-12)
    texts = [t.get_text() for t in ax.texts]
    assert any("max" in t and "4.2" in t for t in texts)
    assert any("min" in t and "-0.5" in t for t in texts)
    # the top-k and bottom-k ticks sit at the eigenvalues
    xs = sorted(float(ln.get_xdata()[0]) for ln in ax.get_lines()
                if ln.get_label() != "exact, broadened" and len(ln.get_xdata()) == 2
                and ln.get_xdata()[0] == ln.get_xdata()[1])
    assert xs == sorted([*top, *bottom])


def test_singular_values_keep_exact_zeros_visible() -> None:
    fig = _singular()
    ax = fig.axes[0]
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "kept" in labels and "cut" in labels and any("exactly 0" in x for x in labels)
    (kept,) = [ln for ln in ax.get_lines() if ln.get_label() == "kept"]
    np.testing.assert_array_equal(kept.get_ydata(), [3.0, 1.0, 0.2])


def test_merge_tree_at_barrier_heights_with_noise_merges_marked() -> None:
    """Known answer: minima 0 and 1 merge at 1e-5 (below the 1e-3 noise level: dashed
    grey, in the legend), 3 and 2 at 0.7, then everything at 0.8; leaves are the minima."""
    ax = _merge_tree().axes[0]
    bars = sorted(round(float(ln.get_ydata()[0]), 12) for ln in ax.get_lines()
                  if len(ln.get_ydata()) == 2 and ln.get_ydata()[0] == ln.get_ydata()[1]
                  and ln.get_xdata()[0] != ln.get_xdata()[1]
                  and not str(ln.get_label()).startswith("noise level"))
    assert bars == [1e-5, 0.7, 0.8]
    noise = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert noise and all(to_hex(ln.get_color()) == GREY for ln in noise)
    assert "noise merge" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1", "3", "2"]
    assert any(t.get_text() == "one component" for t in ax.texts)


def test_path_profiles_inset_on_linear_axis_only() -> None:
    from landscope_service.diagnostics.connectivity.plots import path_profiles_figure

    fig = _path_profiles()
    (inset,) = fig.axes[0].child_axes  # the inset of the optimised paths
    assert [ln.get_linestyle() for ln in inset.get_lines()] == ["-", ":"]
    np.testing.assert_allclose(inset.get_lines()[0].get_ydata(),
                               _profiles_list()[1][2], rtol=0, atol=0)
    logged = path_profiles_figure(_profiles_list(), log=True, caption="c")
    assert not logged.axes[0].child_axes and logged.axes[0].get_yscale() == "log"
    # comparable heights: no inset
    same = [("0-1 linear", [0.0, 0.5, 1.0], [0.0, 0.4, 0.0]),
            ("0-1 neb", [0.0, 0.5, 1.0], [0.0, 0.3, 0.0])]
    assert not path_profiles_figure(same, log=False).axes[0].child_axes


def test_log_axis_wanted_known_answers() -> None:
    assert log_axis_wanted([1.0, 100.0])
    assert not log_axis_wanted([1.0, 99.0])
    assert not log_axis_wanted([0.0, 1e6])  # a zero cannot sit on a log axis
    assert not log_axis_wanted([-1.0, 1e6])
    assert log_axis_wanted(np.array([1e-3, np.nan, 10.0]))
    assert not log_axis_wanted([])


def test_figure_artifacts_are_png_and_svg() -> None:
    arts = figure_artifacts("density", _density())
    assert [(a.name, a.media_type) for a in arts] == [("density.png", "image/png"),
                                                      ("density.svg", "image/svg+xml")]
    assert arts[0].data.startswith(b"\x89PNG")
    # no date or creator: the same figure gives the same bytes
    assert arts[1].data == figure_artifacts("density", _density())[1].data
    assert not re.search(rb"<dc:date>", arts[1].data)


def _close(a: Any, b: Any, path: str = "") -> list[str]:
    """Differences between two figure_data trees (numbers to 1e-6 relative)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _close(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _close(x, y, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float):
        return [] if math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-300) else [
            f"{path}: {a} != {b}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figure_data_regression(name: str) -> None:
    """The figure's content equals the stored copy: the same curves at the same
    coordinates, the same labels, scales, legend and caption."""
    got = json.loads(json.dumps(figure_data(FIGURES[name]())))
    path = DATA / f"{name}.json"
    if os.environ.get("LANDSCOPE_UPDATE_FIGURE_DATA") == "1":
        path.write_text(json.dumps(got, indent=1) + "\n")
    assert path.exists(), f"{path} missing: run with LANDSCOPE_UPDATE_FIGURE_DATA=1 once"
    assert _close(got, json.loads(path.read_text())) == []


def test_figure_data_regression_sees_a_moved_point() -> None:
    """The comparison fails when one coordinate moves (the regression test can fail)."""
    got = json.loads(json.dumps(figure_data(_singular())))
    moved = json.loads(json.dumps(got))
    moved["axes"][0]["lines"][0]["y"][1] *= 1.001
    assert _close(got, got) == []
    assert _close(got, moved) != []
