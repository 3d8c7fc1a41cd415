"""/ui and report.html in a real headless Chromium (Debian's ``chromium`` package, driven
by Playwright; no browser is downloaded), against the real stack (Redis, API, worker).

Log in with a key, see a job appear and finish, open it and its figures, cancel a running
``test_block`` job, submit from pasted JSON, check another tenant sees none of it, and
open a downloaded report.html offline with every network request refused. A screenshot
of each step goes to ``$LANDSCOPE_TEST_OUT/ui`` (default ``out/test-ui``).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import landscope
from landscope_service.local import LocalStack
from landscope_service.reports import external_references

from support import block_request, evaluate_request, wait_file

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("LANDSCOPE_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = Path(os.environ.get("LANDSCOPE_TEST_OUT", "out/test-ui"))
TIMEOUT_MS = 60_000  # turns a hang into a failure; every wait below is for an event

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} missing: `make test` installs Debian's chromium (apt-get, as "
                "root); or set LANDSCOPE_CHROMIUM", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # a refused API answer (a 404 the test asks for) is logged by Chromium as a console
    # error; script errors and Content-Security-Policy violations are what must not occur
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and (
        "Content Security Policy" in m.text or "Uncaught" in m.text) else None)
    yield pg
    ctx.close()
    assert errors == []


def shot(page: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, url: str, key: str) -> None:
    page.goto(url + "/")
    assert page.url == url + "/ui/"  # / leads to the jobs page
    page.locator("#api-key").fill(key)
    page.locator("#login-button").click()
    page.locator("#jobs").wait_for(state="visible")


def hessian_request(run: str) -> dict[str, Any]:
    req = evaluate_request(num_samples=16)
    req.update(kind="hessian_spectrum", options={"top_k": 2, "bottom_k": 1},
               metadata={"run": run})
    return req


def test_security_headers_and_root(stack: LocalStack) -> None:
    import requests

    r = requests.get(stack.url + "/", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"].endswith("/ui/")
    for path in ("/ui/", "/ui/jobs/job_x", "/ui/submit"):
        r = requests.get(stack.url + path, timeout=10)
        assert r.status_code == 200
        csp = r.headers["Content-Security-Policy"]
        script_src = re.search(r"script-src ([^;]*)", csp)
        assert script_src is not None and script_src.group(1).strip() == "'self'"
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", r.text)  # no inline event handler
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)  # no inline script
    # the page itself holds no job data: without a key nothing is shown but the key form
    r = requests.get(stack.url + "/v1/jobs", timeout=10)
    assert r.status_code == 401


def test_browse_follow_cancel_and_isolation(stack: LocalStack, page: Any,
                                           client_a: landscope.Client,
                                           client_b: landscope.Client,
                                           tmp_path: Path) -> None:
    run = f"ui-{uuid.uuid4().hex[:8]}"
    url = stack.url

    # 1. log in: the key form, then the (filtered) jobs table
    page.goto(url + "/ui/")
    page.locator("#login").wait_for(state="visible")
    shot(page, "01-login")
    log_in(page, url, "key-a")
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("sessionStorage.getItem('landscope.apiKey')") == "key-a"
    page.locator("#f-meta").fill(f"run={run}")
    page.locator("#filters button[type=submit]").click()

    # 2. a job submitted elsewhere appears (auto-refresh) and finishes
    job = client_a.jobs.submit(hessian_request(run))
    row = page.locator(f"tr[data-job-id='{job.id}']")
    row.wait_for(state="visible")
    shot(page, "02-job-listed")
    page.locator(f"tr[data-job-id='{job.id}'][data-status='succeeded']").wait_for()
    assert "hessian_spectrum" in row.inner_text() and f"run={run}" in row.inner_text()
    assert "100%" in row.inner_text()
    shot(page, "03-job-succeeded")

    # 3. open it: status, request JSON, artifacts, the report with its figures
    row.locator("a").click()
    page.wait_for_url(f"{url}/ui/jobs/{job.id}")
    page.locator("#report-section").wait_for(state="visible")
    assert page.locator("#job-status").inner_text() == "succeeded"
    assert json.loads(page.locator("#request-json").inner_text())["kind"] == "hessian_spectrum"
    names = page.locator("#artifacts code").all_inner_texts()
    assert {"density.png", "density.svg", "report.html"} <= set(names)
    report = page.frame_locator("#report")
    report.locator("h1").wait_for()
    assert "hessian_spectrum" in report.locator("h1").inner_text()
    assert report.locator("figure svg").count() >= 1
    assert report.locator("table.theory tr").count() >= 2
    assert page.locator("#cancel").is_hidden()
    assert "key-a" not in page.url
    shot(page, "04-job-report")

    # 4. cancel a running job from its page
    gate, started = tmp_path / "gate", tmp_path / "started"
    blocked = client_a.jobs.submit({**block_request(str(gate), started=str(started)),
                                    "metadata": {"run": run}})
    try:
        wait_file(started)
        page.goto(f"{url}/ui/jobs/{blocked.id}")
        page.locator("#job-status", has_text="running").wait_for()
        shot(page, "05-job-running")
        page.locator("#cancel").click()
        page.locator("#job-status", has_text="cancelled").wait_for()
        assert page.locator("#cancel").is_hidden()
        shot(page, "06-job-cancelled")
    finally:
        gate.touch()
    assert client_a.jobs.get(blocked.id).status == "cancelled"

    # 5. submit from pasted JSON: a bad field is named; a good request opens its page
    page.goto(url + "/ui/submit")
    bad = {**evaluate_request(num_samples=8), "loss": "hinge", "metadata": {"run": run}}
    page.locator("#request").fill(json.dumps(bad))
    page.locator("#submit-button").click()
    page.locator("#submit-error").wait_for(state="visible")
    assert "loss" in page.locator("#submit-error").inner_text()
    shot(page, "07-submit-error")
    good = {**evaluate_request(num_samples=8), "metadata": {"run": run}}
    page.locator("#request").fill(json.dumps(good))
    page.locator("#submit-button").click()
    page.wait_for_url(re.compile(re.escape(url) + r"/ui/jobs/job_"))
    page.locator("#job-status", has_text="succeeded").wait_for()
    submitted = page.url.rsplit("/", 1)[1]
    assert client_a.jobs.get(submitted).kind == "evaluate"

    # 6. another tenant's key sees none of it
    page.goto(url + "/ui/")
    page.locator("#jobs-status", has_text="updated").wait_for()
    page.locator("#logout").click()  # the key is forgotten; the form asks for one
    page.locator("#login").wait_for(state="visible")
    assert page.evaluate("sessionStorage.getItem('landscope.apiKey')") is None
    page.locator("#api-key").fill("key-b")
    with page.expect_navigation():  # the page starts afresh with the new key
        page.locator("#login-button").click()
    page.locator("#jobs-status", has_text="updated").wait_for()
    assert page.evaluate("sessionStorage.getItem('landscope.apiKey')") == "key-b"
    listed = set(page.locator("#jobs tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.jobId)"))
    assert not listed & {job.id, blocked.id, submitted}
    b_ids = {j.id for j in client_b.jobs.list()}
    assert listed <= b_ids
    page.goto(f"{url}/ui/jobs/{job.id}")
    page.locator("#job-missing").wait_for(state="visible")
    assert "No job" in page.locator("#job-missing").inner_text()
    assert page.locator("#report-section").is_hidden()
    assert page.locator("#request-section").is_hidden()  # nothing of the job is shown
    shot(page, "08-other-tenant")


def test_report_html_renders_offline(stack: LocalStack, browser: Any,
                                     client_a: landscope.Client, tmp_path: Path) -> None:
    job = client_a.jobs.wait(client_a.jobs.submit(hessian_request("report-offline")).id,
                             timeout=120)
    assert job.status == "succeeded"
    html = client_a.jobs.artifact(job, "report.html").decode()
    assert external_references(html) == []
    path = tmp_path / "report.html"
    path.write_text(html)
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, offline=True)
    requested: list[str] = []
    ctx.route("**/*", lambda route: (requested.append(route.request.url),
                                     route.continue_() if route.request.url.startswith(
                                         "file:") else route.abort()))
    pg = ctx.new_page()
    pg.goto(path.as_uri())
    assert pg.locator("figure svg").count() >= 1
    # the inline SVG is laid out: a figure with a real size, its caption text rendered
    box = pg.locator("figure svg").first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    assert "Hessian spectral density" in pg.locator("figure svg").first.text_content()
    assert [u for u in requested if not u.startswith("file:")] == []
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / "09-report-offline.png"), full_page=True)
    ctx.close()
