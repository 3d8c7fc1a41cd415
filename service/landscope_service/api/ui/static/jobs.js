// /ui/: the jobs table, with filters and auto-refresh every 2 s.
"use strict";

(() => {
  const REFRESH_MS = 2000;
  let timer = null;
  let cursor = null;

  function query(extraCursor) {
    const q = new URLSearchParams();
    const status = document.getElementById("f-status").value;
    const kind = document.getElementById("f-kind").value;
    if (status) q.set("status", status);
    if (kind) q.set("kind", kind);
    for (const pair of document.getElementById("f-meta").value.split(",")) {
      const i = pair.indexOf("=");
      if (i > 0) q.append("metadata." + pair.slice(0, i).trim(), pair.slice(i + 1).trim());
    }
    q.set("limit", "50");
    if (extraCursor) q.set("cursor", extraCursor);
    return q.toString();
  }

  function row(job) {
    const link = LS.el("a", { href: "/ui/jobs/" + encodeURIComponent(job.id), text: job.id });
    return LS.el("tr", { "data-job-id": job.id, "data-status": job.status },
      LS.el("td", {}, link),
      LS.el("td", {}, LS.el("span", { className: "status s-" + job.status, text: job.status })),
      LS.el("td", { text: job.kind }),
      LS.el("td", {}, LS.progressCell(job)),
      LS.el("td", { text: LS.metadataText(job.metadata) }),
      LS.el("td", { text: LS.when(job.created_at) }));
  }

  async function load(append) {
    const info = document.getElementById("jobs-status");
    try {
      const resp = await LS.api("/v1/jobs?" + query(append ? cursor : null));
      if (!resp.ok) {
        info.textContent = await LS.problemText(resp);
        return;
      }
      const body = await resp.json();
      const tbody = document.querySelector("#jobs tbody");
      if (!append) tbody.replaceChildren();
      for (const job of body.items) tbody.append(row(job));
      cursor = body.next_cursor || null;
      document.getElementById("more").hidden = !cursor;
      const n = tbody.children.length;
      info.textContent = `${n} job${n === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString()}`;
    } catch (e) {
      if (!(e instanceof LS.Unauthorized)) info.textContent = "Could not reach the API: " + e;
    }
  }

  function schedule() {
    if (timer) clearInterval(timer);
    timer = null;
    if (document.getElementById("auto-refresh").checked) {
      timer = setInterval(() => load(false), REFRESH_MS);
    }
  }

  LS.onReady(() => {
    document.getElementById("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      load(false);
    });
    for (const id of ["f-status", "f-kind"]) {
      document.getElementById(id).addEventListener("change", () => load(false));
    }
    document.getElementById("auto-refresh").addEventListener("change", schedule);
    document.getElementById("more").addEventListener("click", () => load(true));
    load(false);
    schedule();
  });
})();
