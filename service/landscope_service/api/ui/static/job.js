// /ui/jobs/<id>: live progress (polled every second until the job finishes), cancel,
// the report in a sandboxed frame, artifact downloads, the request JSON.
"use strict";

(() => {
  const POLL_MS = 1000;
  const jobId = document.body.dataset.jobId;
  const path = "/v1/jobs/" + encodeURIComponent(jobId);
  let shownFinished = false;

  function set(id, text) {
    document.getElementById(id).textContent = text;
  }

  function show(job) {
    document.getElementById("job").hidden = false;
    document.getElementById("request-section").hidden = false;
    const status = document.getElementById("job-status");
    status.textContent = job.status;
    status.className = "status s-" + job.status;
    set("job-kind", job.kind);
    const p = job.progress || {};
    const frac = job.status === "succeeded" ? 1 : Math.max(0, Math.min(1, p.fraction || 0));
    document.getElementById("job-progress").value = frac;
    set("job-stage", `${Math.round(frac * 100)}%` + (p.stage ? ` ${p.stage}` : "") +
      (p.message ? `: ${p.message}` : ""));
    set("job-created", LS.when(job.created_at));
    set("job-started", LS.when(job.started_at));
    set("job-finished", LS.when(job.finished_at));
    set("job-metadata", LS.metadataText(job.metadata) || "—");
    set("request-json", JSON.stringify(job.request, null, 2));
    set("result-json", job.result ? JSON.stringify(job.result, null, 2) : "(no result yet)");
    const err = document.getElementById("job-error");
    err.hidden = !job.error;
    err.textContent = job.error ? `${job.error.code}: ${job.error.message}` : "";
    document.getElementById("cancel").hidden = LS.TERMINAL.has(job.status);
    if (LS.TERMINAL.has(job.status) && !shownFinished) {
      shownFinished = true;
      showArtifacts(job);
    }
  }

  async function download(name, mediaType) {
    const resp = await LS.api(path + "/artifacts/" + encodeURIComponent(name),
      { headers: { Accept: mediaType || "*/*" } });
    if (!resp.ok) {
      alert(await LS.problemText(resp));
      return;
    }
    const url = URL.createObjectURL(await resp.blob());
    const a = LS.el("a", { href: url, download: name });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  async function showArtifacts(job) {
    const list = document.getElementById("artifacts");
    list.replaceChildren();
    for (const art of job.artifacts || []) {
      const button = LS.el("button", { type: "button", className: "download",
        "data-name": art.name, text: "download" });
      button.addEventListener("click", () => download(art.name, art.media_type));
      list.append(LS.el("li", {}, LS.el("code", { text: art.name }),
        ` ${art.media_type}, ${art.size.toLocaleString()} bytes `, button));
    }
    document.getElementById("artifacts-section").hidden = !(job.artifacts || []).length;
    if ((job.artifacts || []).some((a) => a.name === "report.html")) {
      const resp = await LS.api(path + "/artifacts/report.html", { headers: { Accept: "text/html" } });
      if (resp.ok) {
        // sandbox="" on the frame: no script, a unique origin; the report has neither
        // script nor external reference, its figures are inline SVG
        document.getElementById("report").srcdoc = await resp.text();
        document.getElementById("report-section").hidden = false;
      }
    }
  }

  async function poll() {
    try {
      const resp = await LS.api(path);
      if (resp.status === 404) {
        const missing = document.getElementById("job-missing");
        missing.hidden = false;
        missing.textContent = `No job ${jobId} for this API key (it does not exist, has expired, or belongs to someone else).`;
        document.getElementById("job").hidden = true;
        return;
      }
      if (!resp.ok) {
        set("job-stage", await LS.problemText(resp));
      } else {
        const job = await resp.json();
        show(job);
        if (LS.TERMINAL.has(job.status)) return;
      }
    } catch (e) {
      if (e instanceof LS.Unauthorized) return;
      set("job-stage", "Could not reach the API: " + e);
    }
    setTimeout(poll, POLL_MS);
  }

  LS.onReady(() => {
    document.getElementById("cancel").addEventListener("click", async () => {
      const button = document.getElementById("cancel");
      button.disabled = true;
      const resp = await LS.api(path + "/cancel", { method: "POST" });
      if (!resp.ok) alert(await LS.problemText(resp));
      else show(await resp.json());
      button.disabled = false;
    });
    poll();
  });
})();
