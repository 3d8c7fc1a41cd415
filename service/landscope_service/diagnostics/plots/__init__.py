"""The figure style shared by every kind (:mod:`.style`) and figure content as data
(:mod:`.data`). Matplotlib only; no service layer."""

from .data import figure_artifacts, figure_data
from .style import (
    GREY,
    OKABE_ITO,
    PALETTE,
    SEQUENTIAL_CMAP,
    Width,
    caption_text,
    clipped_texts,
    color,
    log_axis_wanted,
    new_figure,
    render,
    set_caption,
    styled,
)

__all__ = [
    "GREY",
    "OKABE_ITO",
    "PALETTE",
    "SEQUENTIAL_CMAP",
    "Width",
    "caption_text",
    "clipped_texts",
    "color",
    "figure_artifacts",
    "figure_data",
    "log_axis_wanted",
    "new_figure",
    "render",
    "set_caption",
    "styled",
]
