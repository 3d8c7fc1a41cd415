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
        return true;
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
      if (e instanceof LS.Unauthorized) return false;  // the key form is shown: stop
      info.textContent = "Could not reach the API: " + e;
    }
    return true;
  }

  // one refresh at a time: the next is scheduled when the previous answer is drawn
  async function tick() {
    timer = null;
    if (!(await load(false))) return;
    if (document.getElementById("auto-refresh").checked && timer === null) {
      timer = setTimeout(tick, REFRESH_MS);
    }
  }

  function schedule() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (document.getElementById("auto-refresh").checked) timer = setTimeout(tick, REFRESH_MS);
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
    document.getElementById("more").addEventListener("click", () => {
      // older pages stay on screen: a refresh would replace them with the first page
      document.getElementById("auto-refresh").checked = false;
      schedule();
      load(true);
    });
    tick();
  });
})();
