// The dashboard's playground: one chat request to /v1 from this page, with the key the buyer
// pasted (kept in the form only) and the routing headers filled in; shows the answer (streamed
// as it arrives when asked), its usage, a link to its charge and the X-DF-* route diagnostics.
// Everything the server sent is shown as text, never as HTML.
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
    if (data.get("stream")) {
      body.stream = true;
      body.stream_options = { include_usage: true };
    }
    return { headers, body: JSON.stringify(body), stream: Boolean(body.stream) };
  }

  function start(response) {
    $("pg-result").hidden = false;
    $("pg-outcome").textContent = `HTTP ${response.status}${response.ok ? "" : " " + response.statusText}`;
    $("pg-answer").textContent = "";
    $("pg-usage").textContent = "";
    for (const id of ["pg-answer", "pg-usage", "pg-error", "pg-charge"]) $(id).hidden = true;
    const requestId = response.headers.get("X-DF-Market-Request-Id");
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

  function answered(response, { model, usage, finish, elapsedMs, ttftMs }) {
    const timing = `in ${Math.round(elapsedMs)} ms` +
      (ttftMs === null ? "" : `, first token after ${Math.round(ttftMs)} ms`);
    $("pg-outcome").textContent = `HTTP ${response.status} ${timing}`;
    $("pg-answer").hidden = false;
    $("pg-usage").hidden = false;
    usage = usage || {};
    $("pg-usage").textContent =
      `${usage.prompt_tokens ?? "?"} prompt + ${usage.completion_tokens ?? "?"} completion tokens` +
      ` from ${model}, finish reason ${finish ?? "none"}`;
    $("pg-charge").hidden = !response.headers.get("X-DF-Market-Request-Id");
  }

  function failed(payload, fallback) {
    const error = (payload && payload.error) || {};
    $("pg-error").hidden = false;
    $("pg-error-message").textContent = error.message || fallback;
    $("pg-error-body").textContent = payload ? JSON.stringify(payload, null, 2) : "";
  }

  async function readStream(response, started) {
    // Server-sent events: `data: {chunk}` blocks, then `data: [DONE]`.
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const result = { model: "", usage: null, finish: null, ttftMs: null };
    let buffer = "";
    $("pg-answer").hidden = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of block.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") return result;
          const chunk = JSON.parse(data);
          if (chunk.error) {
            failed(chunk, "The stream was cut.");
            return result;
          }
          result.model = chunk.model || result.model;
          if (chunk.usage) result.usage = chunk.usage;
          const choice = (chunk.choices || [])[0];
          if (!choice) continue;
          if (choice.finish_reason) result.finish = choice.finish_reason;
          const text = choice.delta && choice.delta.content;
          if (text) {
            if (result.ttftMs === null) result.ttftMs = performance.now() - started;
            $("pg-answer").textContent += text;
          }
        }
      }
    }
    return result;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const { headers, body, stream } = request(new FormData(form));
    send.disabled = true;
    status.textContent = "Sending…";
    const started = performance.now();
    try {
      const response = await fetch(form.dataset.api + "/chat/completions", {
        method: "POST", headers, body, credentials: "omit", cache: "no-store",
      });
      start(response);
      const events = (response.headers.get("Content-Type") || "").startsWith("text/event-stream");
      if (response.ok && stream && events) {
        const result = await readStream(response, started);
        answered(response, { ...result, elapsedMs: performance.now() - started });
      } else {
        const payload = await response.json().catch(() => null);
        if (response.ok && payload && Array.isArray(payload.choices)) {
          const choice = payload.choices[0] || {};
          $("pg-answer").textContent = (choice.message && choice.message.content) || "";
          answered(response, {
            model: payload.model, usage: payload.usage, finish: choice.finish_reason,
            elapsedMs: performance.now() - started, ttftMs: null,
          });
        } else {
          failed(payload, "The answer was not JSON.");
        }
      }
      status.textContent = "";
    } catch (err) {
      status.textContent = "The request did not complete: " + err.message;
    } finally {
      send.disabled = false;
    }
  });
})();
