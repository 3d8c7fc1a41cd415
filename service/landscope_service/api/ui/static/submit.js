// /ui/submit: POST a pasted request JSON (one idempotency key per click), then open the job.
"use strict";

(() => {
  LS.onReady(() => {
    document.getElementById("submit-form").addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const out = document.getElementById("submit-error");
      out.hidden = true;
      let body;
      try {
        body = JSON.parse(document.getElementById("request").value);
      } catch (e) {
        out.hidden = false;
        out.textContent = "The request is not valid JSON: " + e.message;
        return;
      }
      const button = document.getElementById("submit-button");
      button.disabled = true;
      try {
        const resp = await LS.api("/v1/jobs", {
          method: "POST",
          headers: { "Content-Type": "application/json", "Idempotency-Key": LS.randomKey() },
          body: JSON.stringify(body),
        });
        if (resp.status === 202 || resp.ok) {
          const job = await resp.json();
          window.location.assign("/ui/jobs/" + encodeURIComponent(job.id));
          return;
        }
        out.hidden = false;
        out.textContent = await LS.problemText(resp);
      } catch (e) {
        if (!(e instanceof LS.Unauthorized)) {
          out.hidden = false;
          out.textContent = "Could not reach the API: " + e;
        }
      } finally {
        button.disabled = false;
      }
    });
  });
})();
