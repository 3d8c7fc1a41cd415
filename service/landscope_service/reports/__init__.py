"""Per-job reports: one self-contained ``report.html`` assembled from a finished job's
request, result and artifacts (no numerics, no network references)."""

from .html import (
    REPORT_NAME,
    TheoryRow,
    external_references,
    job_report,
    report_artifact,
    report_html,
    theory_rows,
)

__all__ = [
    "REPORT_NAME",
    "TheoryRow",
    "external_references",
    "job_report",
    "report_artifact",
    "report_html",
    "theory_rows",
]
