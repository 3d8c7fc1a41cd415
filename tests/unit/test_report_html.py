"""report.html: the theory table of each kind's theory block (known answers), the page's
sections, escaping, inline SVG figures, PNG data URIs, and no external reference; built
from real in-process runs of hessian_spectrum and minimizer_manifold."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch

from landscope_service.diagnostics import Problem, RunContext, run_hessian_spectrum
from landscope_service.diagnostics.manifold import run_minimizer_manifold
from landscope_service.diagnostics.output import Artifact
from landscope_service.reports import (
    external_references,
    job_report,
    report_artifact,
    report_html,
    theory_rows,
)

REQUEST: dict[str, Any] = {
    "kind": "hessian_spectrum",
    "model": {"architecture": {"type": "mlp", "input_dim": 2, "hidden": [6],
                               "output_dim": 1, "activation": "tanh", "bias": True},
              "init_seed": 0},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 5, "seed": 0}},
    "loss": "mse", "dtype": "float64", "options": {"top_k": 2, "bottom_k": 1},
}


def _problem() -> Problem:
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(2, 6), torch.nn.Tanh(),
                            torch.nn.Linear(6, 1)).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    y = torch.randn(5, 1, dtype=torch.float64)
    return Problem(m, {k: v.detach() for k, v in m.named_parameters()}, x, y, "mse")


@pytest.fixture(scope="module")
def hessian_run() -> Any:
    return run_hessian_spectrum(_problem(), {"top_k": 2, "bottom_k": 1}, RunContext(seed=0))


def _job(kind: str = "hessian_spectrum", **meta: str) -> dict[str, Any]:
    return {"id": "job_TEST", "kind": kind, "request": {**REQUEST, "kind": kind},
            "metadata": meta, "created_at": 1_700_000_000.0}


def test_theory_rows_of_a_manifold_block() -> None:
    theory = {"theorem": "Cooper 2018/2021", "applies": True,
              "hypotheses": [{"name": "squared loss", "holds": True, "detail": "mse"},
                             {"name": "distinct data", "holds": False, "detail": ""}],
              "predicted_dimension": 20, "measured_dimension": 19, "agrees": False}
    (row,) = theory_rows(theory)
    assert row.theorem == "Cooper 2018/2021"
    assert row.applies == "yes"
    assert row.hypotheses == ["squared loss: holds (mse)", "distinct data: fails"]
    assert row.predicted == ["dimension: 20"]
    assert row.measured == ["dimension: 19"]
    assert row.verdict == "disagrees"


def test_theory_rows_of_hessian_predictions_and_connectivity_entries() -> None:
    theory = {
        "predictions": [
            {"statement": "PSD at a minimum", "predicted": "lambda_min >= -tol",
             "measured": {"lambda_min": -0.5, "tol": 1e-6}, "consistent": None},
            {"statement": "G is PSD", "predicted": "v^T G v >= 0",
             "measured": {"q": 0.25}, "consistent": True},
        ],
        "freeman_bruna_linear": {"statement": "width > min(in, out)",
                                 "hypotheses": {"linear_network": False, "m": 4},
                                 "applies": False, "predicted_n_lambda": None,
                                 "measured": {"max_n_lambda": 2},
                                 "verdict": "not applicable"},
        "quadratic": {"statement": "m > 2N", "applies": False, "verdict": None,
                      "agrees": None},
        "verdict": "saddle",
    }
    rows = theory_rows(theory)
    assert [r.theorem for r in rows] == ["PSD at a minimum", "G is PSD",
                                         "width > min(in, out)", "m > 2N"]
    assert rows[0].measured == ["lambda_min = -0.5", "tol = 1e-06"]
    assert [r.verdict for r in rows] == ["undecided", "agrees", "not applicable",
                                         "does not apply"]
    assert rows[2].hypotheses == ["linear_network: no", "m: 4"]
    assert rows[2].predicted == ["n_lambda: —"]
    assert rows[2].applies == "no"


def test_report_of_a_hessian_run(hessian_run: Any) -> None:
    art = report_artifact(_job(run="<b>exp-42</b>"), hessian_run.result,
                          hessian_run.artifacts, finished_at=1_700_000_100.0)
    assert art.name == "report.html" and art.media_type == "text/html"
    html = art.data.decode()
    assert external_references(html) == []
    assert "<script" not in html.lower()
    for text in ("hessian_spectrum", "job_TEST", "2023-11-14 22:13:20 UTC",
                 "mlp 2 -&gt; [6] -&gt; 1, tanh, bias; init_seed 0",
                 "synthetic name teacher_student, num_samples 5, seed 0",
                 "<th>theorem</th><th>hypotheses</th><th>predicted</th><th>measured</th>"
                 "<th>verdict</th>", "Verdict:", "sharpness", "density.svg"):
        assert text in html, text
    # the caller's metadata is text, never markup
    assert "&lt;b&gt;exp-42&lt;/b&gt;" in html and "<b>exp-42" not in html
    # the density figure is inline SVG (no prolog, no DOCTYPE), the PNG twin not repeated
    assert html.count("<svg") == 1 and "<!DOCTYPE svg" not in html
    assert "data:image/png" not in html
    # the sharpness in the numbers table is the result's, to 6 digits
    assert f"{hessian_run.result['sharpness']:.6g}" in html


def test_report_of_a_manifold_run_lists_cooper_hypotheses() -> None:
    out = run_minimizer_manifold(_problem(), {}, RunContext(seed=0))
    html = report_html(_job("minimizer_manifold"), out.result, out.artifacts)
    assert external_references(html) == []
    assert "Cooper" in html and "overparameterised (P &gt;= rN): holds" in html
    assert html.count("<svg") == 1  # singular_values.svg
    assert "singular_values.json" in html  # listed among the artifacts


def test_png_without_svg_is_a_data_uri_and_unsafe_svg_is_not_inlined() -> None:
    png = Artifact("contour.png", "image/png", b"\x89PNG\r\n\x1a\nfake")
    bad = Artifact("evil.svg", "image/svg+xml",
                   b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    ext = Artifact("ext.svg", "image/svg+xml",
                   b'<svg xmlns="http://www.w3.org/2000/svg"><image href="http://x/a.png"/>'
                   b"</svg>")
    html = report_html(_job("evaluate"), {"loss": 1.0, "warnings": ["watch out"]},
                       [png, bad, ext])
    assert 'src="data:image/png;base64,' in html
    assert "<script" not in html  # the unsafe SVG became an <img> data URI (no scripts run)
    assert html.count('src="data:image/svg+xml;base64,') == 2
    assert external_references(html) == []
    assert '<div class="warn">watch out</div>' in html
    assert "This kind states no theorem" in html


def test_external_references_finds_each_kind_of_reference() -> None:
    page = ('<img src="http://x/y.png"><a href="https://e">x</a><a href="#ok">ok</a>'
            '<style>@import "a.css"; b{background:url(http://z)}</style>'
            '<svg xmlns="http://www.w3.org/2000/svg"><image xlink:href="//q/r"/></svg>'
            '<div onclick="x"></div><script></script><link rel="stylesheet" href="s.css">')
    found = external_references(page)
    assert len(found) == 9, found
    assert external_references('<svg xmlns="http://www.w3.org/2000/svg"></svg>') == []


def test_job_report_logs_and_returns_none_when_it_cannot_build(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="landscope.reports"):
        assert job_report({"id": "job_X"}, None, []) is None  # type: ignore[arg-type]
    assert "report.html not written for job_X" in caplog.text
    assert job_report(_job("evaluate"), {"loss": 0.5}, []) is not None
