// landscope /ui: shared helpers. The API key lives in sessionStorage only and goes out
// only as an Authorization header; nothing here writes data into HTML as markup.
"use strict";

const LS = (() => {
  const KEY = "landscope.apiKey";
  const starters = [];

  function apiKey() {
    return sessionStorage.getItem(KEY);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "className") node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function showLogin(message) {
    document.getElementById("login").hidden = false;
    document.getElementById("main").hidden = true;
    document.getElementById("who").hidden = true;
    const err = document.getElementById("login-error");
    err.hidden = !message;
    err.textContent = message || "";
    document.getElementById("api-key").focus();
  }

  function showMain() {
    document.getElementById("login").hidden = true;
    document.getElementById("main").hidden = false;
    document.getElementById("who").hidden = false;
  }

  class Unauthorized extends Error {}

  async function api(path, options) {
    if (!apiKey()) {  // forgotten: ask again, send nothing
      showLogin("");
      throw new Unauthorized("no key");
    }
    const opts = Object.assign({}, options || {});
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    headers.Authorization = "Bearer " + apiKey();
    opts.headers = headers;
    opts.cache = "no-store";
    opts.credentials = "omit";
    const resp = await fetch(path, opts);
    if (resp.status === 401) {
      sessionStorage.removeItem(KEY);
      showLogin("The server refused this API key (401). Type it again.");
      throw new Unauthorized("unauthorized");
    }
    return resp;
  }

  // A problem+json answer as one readable text: detail, then each field's messages.
  async function problemText(resp) {
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!body || typeof body !== "object") return `HTTP ${resp.status}`;
    const lines = [`${resp.status} ${body.title || ""}: ${body.detail || body.message || ""}`.trim()];
    const walk = (prefix, errs) => {
      if (Array.isArray(errs)) { lines.push(`${prefix}: ${errs.join(" ")}`); return; }
      if (errs && typeof errs === "object") {
        for (const [k, v] of Object.entries(errs)) walk(prefix ? `${prefix}.${k}` : k, v);
      } else if (errs !== undefined) lines.push(`${prefix}: ${errs}`);
    };
    if (body.errors) walk("", body.errors);
    return lines.join("\n");
  }

  function when(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function metadataText(meta) {
    return Object.entries(meta || {}).map(([k, v]) => `${k}=${v}`).join(", ");
  }

  function progressCell(job) {
    const p = job.progress || {};
    const frac = job.status === "succeeded" ? 1 : Math.max(0, Math.min(1, p.fraction || 0));
    const bar = el("progress", { max: "1", value: String(frac) });
    const label = `${Math.round(frac * 100)}%` + (p.stage ? ` ${p.stage}` : "") +
      (p.message ? `: ${p.message}` : "");
    return el("span", { className: "progress" }, bar, " ", el("span", { text: label }));
  }

  const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

  function randomKey() {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return "ui-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function onReady(start) {
    starters.push(start);
  }

  let started = false;

  function startAll() {
    if (started) {  // a key typed again after "Forget key": start the page afresh
      window.location.reload();
      return;
    }
    started = true;
    showMain();
    for (const s of starters) s();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("login-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const input = document.getElementById("api-key");
      const key = input.value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY, key);
      input.value = "";
      startAll();
    });
    document.getElementById("logout").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      showLogin("");
    });
    // page scripts register with onReady before this runs (all scripts are deferred)
    if (apiKey()) startAll(); else showLogin("");
  });

  return { api, el, problemText, when, metadataText, progressCell, TERMINAL, randomKey,
           onReady, Unauthorized };
})();
