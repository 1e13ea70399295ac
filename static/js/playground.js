// The dashboard's playground: one chat request to /v1 from this page, with the key the buyer
// pasted (kept in the form only) and the routing headers filled in; shows the answer, its usage,
// a link to its charge and the X-DF-* route diagnostics. Everything the server sent is shown as
// text, never as HTML.
(function () {
  "use strict";
  const form = document.getElementById("playground-form");
  if (!form) return;

  const ROUTING_HEADERS = [
    "X-Max-Price", "X-Max-TTFT-Ms", "X-Hard-Max-TTFT-Ms", "X-Provider-Only",
    "X-Provider-Ignore", "X-Session-Id", "X-Privacy-Mode",
  ];
  const DIAGNOSTICS = [
    "X-DF-Market-Route", "X-DF-Market-Provider", "X-DF-Market-Listing-Id",
    "X-DF-Market-Request-Id", "X-DF-Upstream-Model", "X-DF-Market-Ask-Input",
    "X-DF-Market-Ask-Output", "X-DF-Market-Fee-Profile-Id", "X-RateLimit-Remaining-Requests",
  ];
  const $ = (id) => document.getElementById(id);
  const send = $("pg-send");
  const status = $("pg-status");

  function request(data) {
    const headers = {
      "Authorization": "Bearer " + String(data.get("key") || "").trim(),
      "Content-Type": "application/json",
    };
    for (const name of ROUTING_HEADERS) {
      const value = String(data.get(name) || "").trim();
      if (value) headers[name] = value;
    }
    const body = {
      model: data.get("model"),
      messages: [{ role: "user", content: String(data.get("message") || "") }],
    };
    const maxTokens = String(data.get("max_tokens") || "").trim();
    if (maxTokens) body.max_tokens = Number(maxTokens);
    return { headers, body: JSON.stringify(body) };
  }

  function show(response, payload, elapsedMs) {
    $("pg-result").hidden = false;
    const ok = response.ok && payload && Array.isArray(payload.choices);
    $("pg-outcome").textContent =
      `HTTP ${response.status}${ok ? "" : " " + response.statusText} in ${Math.round(elapsedMs)} ms`;
    $("pg-answer").hidden = !ok;
    $("pg-usage").hidden = !ok;
    $("pg-error").hidden = ok;
    if (ok) {
      const choice = payload.choices[0] || {};
      $("pg-answer").textContent = (choice.message && choice.message.content) || "";
      const usage = payload.usage || {};
      $("pg-usage").textContent =
        `${usage.prompt_tokens ?? "?"} prompt + ${usage.completion_tokens ?? "?"} completion tokens` +
        ` from ${payload.model}, finish reason ${choice.finish_reason ?? "none"}`;
    } else {
      const error = (payload && payload.error) || {};
      $("pg-error-message").textContent = error.message || "The answer was not JSON.";
      $("pg-error-body").textContent = payload ? JSON.stringify(payload, null, 2) : "";
    }
    const requestId = response.headers.get("X-DF-Market-Request-Id");
    $("pg-charge").hidden = !(ok && requestId);
    if (requestId) $("pg-charge-link").href = "/billing/usage/" + encodeURIComponent(requestId) + "/";
    const rows = $("pg-diagnostics").tBodies[0];
    rows.replaceChildren();
    for (const name of DIAGNOSTICS) {
      const value = response.headers.get(name);
      if (value === null) continue;
      const row = rows.insertRow();
      row.dataset.header = name.toLowerCase();
      row.insertCell().textContent = name;
      row.insertCell().textContent = value;
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { headers, body } = request(new FormData(form));
    send.disabled = true;
    status.textContent = "Sending…";
    const started = performance.now();
    try {
      const response = await fetch(form.dataset.api + "/chat/completions", {
        method: "POST", headers, body, credentials: "omit", cache: "no-store",
      });
      const payload = await response.json().catch(() => null);
      show(response, payload, performance.now() - started);
      status.textContent = "";
    } catch (err) {
      status.textContent = "The request did not complete: " + err.message;
    } finally {
      send.disabled = false;
    }
  });
})();
