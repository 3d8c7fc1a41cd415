"""``/ui``: a small web page to browse, follow, cancel and submit jobs.

Flask templates and a little plain JavaScript, no build step. The pages are static
shells: every job, artifact and report they show is fetched by the browser from the
``/v1`` API with the caller's key, so tenant isolation is the API's. The key is typed
once, kept in ``sessionStorage`` (gone when the tab closes) and sent as an
``Authorization: Bearer`` header; it is never put in a URL or a cookie.

Every response of these pages carries a Content-Security-Policy with no inline script
(scripts only from ``/ui/static``), ``X-Content-Type-Options: nosniff`` and frame
denial (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``). A job's ``report.html``
is shown in a sandboxed frame (no script, its own origin).
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, redirect, render_template

from ...jobs.registry import kinds

__all__ = ["SECURITY_HEADERS", "blp", "root"]

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    # inline styles only: report.html and matplotlib's SVG carry <style> elements
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "connect-src 'self'",
    "frame-src 'self' blob: data:",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

EXAMPLE_REQUEST = {
    "kind": "hessian_spectrum",
    "model": {"architecture": {"type": "mlp", "input_dim": 3, "hidden": [8, 8],
                               "output_dim": 1, "activation": "tanh", "bias": True},
              "init_seed": 0},
    "data": {"synthetic": {"name": "teacher_student", "num_samples": 64, "seed": 0}},
    "loss": "mse",
    "dtype": "float64",
    "options": {"top_k": 3, "bottom_k": 1},
    "metadata": {"run": "from-ui"},
}

blp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="templates",
                static_folder="static")
root = Blueprint("ui_root", __name__)


@blp.after_request
def _security_headers(resp: Response) -> Response:
    resp.headers.update(SECURITY_HEADERS)
    return resp


@root.after_request
def _root_security_headers(resp: Response) -> Response:
    resp.headers.update(SECURITY_HEADERS)
    return resp


@root.get("/")
def index() -> Response:
    """``/`` leads to the jobs page."""
    return redirect("/ui/", code=302)  # type: ignore[return-value]


@blp.get("/")
def jobs_page() -> str:
    """The jobs table (status, kind, progress, metadata, created), filters, auto-refresh."""
    return render_template("jobs.html", kinds=sorted(kinds()), page="jobs")


@blp.get("/jobs/<string:job_id>")
def job_page(job_id: str) -> str:
    """One job: live progress, cancel, its report, artifacts, request JSON."""
    return render_template("job.html", job_id=job_id, page="job")


@blp.get("/submit")
def submit_page() -> str:
    """A form that submits a job from a pasted request JSON."""
    return render_template("submit.html", example=json.dumps(EXAMPLE_REQUEST, indent=2),
                           page="submit")
