// The dashboard's playground: one request to /v1 from this page, with the key the buyer pasted
// (kept in the form only) and the routing headers filled in. Three endpoints: a chat completion
// (OpenAI's format, streamed as it arrives when asked), an Anthropic Messages call (x-api-key and
// anthropic-version, its own stream events) and speech (the MP3 played in the page). Shows the
// answer, its usage and cost, a link to its charge, the headers sent (never the key) and the
// X-DF-* route diagnostics. Inputs are checked here first, against the gateway's own limits
// (the page's data-* attributes), so a typo is named beside its field rather than sent; the
// gateway checks again. Everything the server sent is shown as text, never as HTML.
(function () {
  "use strict";
  const form = document.getElementById("playground-form");
  if (!form) return;

  const ROUTING_HEADERS = [
    "X-Max-Price", "X-Max-TTFT-Ms", "X-Hard-Max-TTFT-Ms", "X-Min-Throughput-TPS",
    "X-Hard-Min-Throughput-TPS", "X-Provider-Only", "X-Provider-Ignore", "X-Provider-Order",
    "X-Session-Id", "X-Privacy-Mode",
  ];
  const DIAGNOSTICS = [
    "X-DF-Market-Route", "X-DF-Market-Provider", "X-DF-Market-Listing-Id",
    "X-DF-Market-Request-Id", "X-DF-Upstream-Model", "X-DF-Market-Ask-Input",
    "X-DF-Market-Ask-Output", "X-DF-Market-Fee-Profile-Id", "X-DF-Cost",
    "X-RateLimit-Remaining-Requests",
  ];
  // Headers that carry the key: sent, never shown.
  const SECRET_HEADERS = new Set(["authorization", "x-api-key"]);
  const $ = (id) => document.getElementById(id);
  const send = $("pg-send");
  const status = $("pg-status");
  const audio = $("pg-audio");
  let audioUrl = null;

  // ---- modes: which fields and which endpoint

  const mode = () => form.elements.mode.value;

  function showMode() {
    for (const el of form.querySelectorAll("[data-modes]")) {
      el.hidden = !el.dataset.modes.split(" ").includes(mode());
    }
  }
  form.addEventListener("change", (event) => {
    if (event.target.name === "mode") showMode();
  });
  showMode();

  // ---- checks, with the gateway's rules (gateway/routing.py, gateway/request.py)

  const DECIMAL = /^\d+(\.\d+)?$/;
  const PRICE = /^\d+(\.\d{1,9})?$/; // dollars, at most 9 places (one nano-dollar)
  const SLUG = /^[a-z0-9][a-z0-9_.-]*$/;
  const SESSION = /^[\x21-\x7e]{1,200}$/; // printable ASCII, no spaces

  function problem(input) {
    const value = input.value.trim();
    const { rule, min, max, unit } = input.dataset;
    if (rule === "key") {
      if (!value) return "Paste an access key: it starts with sk-df-.";
      if (!value.startsWith("sk-df-")) return "An access key starts with sk-df-.";
      return "";
    }
    if (rule === "text") {
      if (!value) return "Type something to send.";
      if (max && input.value.length > Number(max)) return `At most ${Number(max).toLocaleString("en")} characters.`;
      return "";
    }
    if (!value) {
      if (input.id === "pg-max-tokens" && mode() === "messages") {
        return "The Messages API needs max_tokens (Anthropic's format requires it).";
      }
      return "";
    }
    if (rule === "integer") {
      if (!/^\d+$/.test(value) || Number(value) < Number(min) || Number(value) > Number(max)) {
        return `A whole number from ${min} to ${Number(max).toLocaleString("en")}.`;
      }
    } else if (rule === "number") {
      if (!DECIMAL.test(value) || Number(value) < Number(min) || Number(value) > Number(max)) {
        return `A number${unit ? " of " + unit : ""} from ${min} to ${Number(max).toLocaleString("en")}.`;
      }
    } else if (rule === "price") {
      if (!PRICE.test(value) || Number(value) > Number(max)) {
        return `A price in USD per million input tokens, e.g. 0.50 (at most 9 decimal places, up to ${Number(max).toLocaleString("en")}).`;
      }
    } else if (rule === "slugs") {
      const slugs = value.split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
      if (!slugs.length || !slugs.every((s) => SLUG.test(s))) {
        return "Provider slugs separated by commas, e.g. deepseek,minimax.";
      }
    } else if (rule === "session") {
      if (!SESSION.test(value)) return "1 to 200 printable ASCII characters, without spaces.";
    }
    return "";
  }

  // Marks every field in the current mode with its problem; answers the first field that has one.
  function check() {
    let first = null;
    for (const input of form.querySelectorAll("[data-rule]")) {
      const hidden = input.closest("[data-modes]");
      const message = hidden && hidden.hidden ? "" : problem(input);
      const error = $(input.id + "-error");
      error.textContent = message;
      error.hidden = !message;
      if (message) {
        input.setAttribute("aria-invalid", "true");
        input.setAttribute("aria-describedby", error.id);
        first = first || input;
      } else {
        input.removeAttribute("aria-invalid");
        input.removeAttribute("aria-describedby");
      }
    }
    return first;
  }

  // ---- the request of each mode

  function routingHeaders(data) {
    const headers = {};
    for (const name of ROUTING_HEADERS) {
      const value = String(data.get(name) || "").trim();
      if (value) headers[name] = value;
    }
    return headers;
  }

  function request(data) {
    const key = String(data.get("key") || "").trim();
    const current = mode();
    const headers = { "Content-Type": "application/json", ...routingHeaders(data) };
    const maxTokens = String(data.get("max_tokens") || "").trim();
    const stream = current !== "speech" && Boolean(data.get("stream"));
    let path, body;
    if (current === "speech") {
      headers["Authorization"] = "Bearer " + key;
      path = "/audio/speech";
      body = {
        model: data.get("speech_model"), input: String(data.get("input") || ""),
        voice: data.get("voice"), response_format: "mp3",
      };
      const speed = String(data.get("speed") || "").trim();
      if (speed) body.speed = Number(speed);
    } else if (current === "messages") {
      headers["x-api-key"] = key;
      headers["anthropic-version"] = form.dataset.anthropicVersion;
      path = "/messages";
      body = {
        model: data.get("model"), max_tokens: Number(maxTokens),
        messages: [{ role: "user", content: String(data.get("message") || "") }],
      };
      if (stream) body.stream = true;
    } else {
      headers["Authorization"] = "Bearer " + key;
      path = "/chat/completions";
      body = {
        model: data.get("model"),
        messages: [{ role: "user", content: String(data.get("message") || "") }],
      };
      if (maxTokens) body.max_tokens = Number(maxTokens);
      if (stream) {
        body.stream = true;
        body.stream_options = { include_usage: true };
      }
    }
    return { mode: current, path, headers, body: JSON.stringify(body), stream };
  }

  function showSent(headers) {
    const rows = $("pg-sent").tBodies[0];
    rows.replaceChildren();
    for (const [name, value] of Object.entries(headers)) {
      if (SECRET_HEADERS.has(name.toLowerCase()) || name === "Content-Type") continue;
      const row = rows.insertRow();
      row.dataset.header = name.toLowerCase();
      row.insertCell().textContent = name;
      row.insertCell().textContent = value;
    }
    $("pg-sent-section").hidden = rows.rows.length === 0;
  }

  // ---- the answer

  function start(response) {
    $("pg-result").hidden = false;
    $("pg-outcome").textContent = `HTTP ${response.status}${response.ok ? "" : " " + response.statusText}`;
    $("pg-answer").textContent = "";
    $("pg-usage").textContent = "";
    for (const id of ["pg-answer", "pg-usage", "pg-error", "pg-charge", "pg-speech"]) $(id).hidden = true;
    if (audioUrl) {
      audio.removeAttribute("src");
      URL.revokeObjectURL(audioUrl);
      audioUrl = null;
    }
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

  function answered(response, { usageText, elapsedMs, ttftMs }) {
    const timing = `in ${Math.round(elapsedMs)} ms` +
      (ttftMs === null ? "" : `, first token after ${Math.round(ttftMs)} ms`);
    $("pg-outcome").textContent = `HTTP ${response.status} ${timing}`;
    $("pg-usage").hidden = false;
    $("pg-usage").textContent = usageText;
    $("pg-charge").hidden = !response.headers.get("X-DF-Market-Request-Id");
  }

  function chatUsage({ model, usage, finish }) {
    usage = usage || {};
    return `${usage.prompt_tokens ?? "?"} prompt + ${usage.completion_tokens ?? "?"} completion tokens` +
      ` from ${model}, finish reason ${finish ?? "none"}`;
  }

  function messagesUsage({ model, usage, finish }) {
    usage = usage || {};
    return `${usage.input_tokens ?? "?"} input + ${usage.output_tokens ?? "?"} output tokens` +
      ` from ${model}, stop reason ${finish ?? "none"}`;
  }

  function failed(payload, fallback) {
    const error = (payload && payload.error) || {};
    $("pg-error").hidden = false;
    $("pg-error-message").textContent = error.message || fallback;
    $("pg-error-body").textContent = payload ? JSON.stringify(payload, null, 2) : "";
  }

  // Server-sent events, block by block: each block's `data:` JSON handed to `onEvent`, which
  // answers true to stop reading.
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        for (const line of block.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]" || onEvent(JSON.parse(data))) return;
        }
      }
    }
  }

  function appendText(result, text, started) {
    if (!text) return;
    if (result.ttftMs === null) result.ttftMs = performance.now() - started;
    $("pg-answer").textContent += text;
  }

  async function readChatStream(response, started) {
    const result = { model: "", usage: null, finish: null, ttftMs: null };
    $("pg-answer").hidden = false;
    await readEvents(response, (chunk) => {
      if (chunk.error) {
        failed(chunk, "The stream was cut.");
        return true;
      }
      result.model = chunk.model || result.model;
      if (chunk.usage) result.usage = chunk.usage;
      const choice = (chunk.choices || [])[0];
      if (!choice) return false;
      if (choice.finish_reason) result.finish = choice.finish_reason;
      appendText(result, choice.delta && choice.delta.content, started);
      return false;
    });
    return result;
  }

  // Anthropic's events: message_start (model, input tokens), content_block_delta (text),
  // message_delta (stop reason, output tokens), message_stop; an `error` event ends it.
  async function readMessagesStream(response, started) {
    const result = { model: "", usage: {}, finish: null, ttftMs: null };
    $("pg-answer").hidden = false;
    await readEvents(response, (event) => {
      if (event.type === "error") {
        failed(event, "The stream was cut.");
        return true;
      }
      if (event.type === "message_start") {
        result.model = event.message.model;
        Object.assign(result.usage, event.message.usage || {});
      } else if (event.type === "content_block_delta" && event.delta.type === "text_delta") {
        appendText(result, event.delta.text, started);
      } else if (event.type === "message_delta") {
        result.finish = event.delta.stop_reason;
        Object.assign(result.usage, event.usage || {});
      }
      return event.type === "message_stop";
    });
    return result;
  }

  async function playSpeech(response) {
    const blob = await response.blob();
    audioUrl = URL.createObjectURL(blob);
    const info = $("pg-speech-info");
    info.textContent = `${blob.size.toLocaleString("en")} bytes of ${blob.type || "audio"}`;
    audio.onloadedmetadata = () => { info.textContent += `, ${audio.duration.toFixed(2)} s`; };
    audio.onerror = () => { info.textContent += ": the browser could not play it"; };
    audio.src = audioUrl;
    $("pg-speech").hidden = false;
    audio.play().catch(() => {}); // the browser may want a click on play first
  }

  async function handle(req, response, started) {
    const type = response.headers.get("Content-Type") || "";
    const elapsed = () => performance.now() - started;
    if (response.ok && req.stream && type.startsWith("text/event-stream")) {
      if (req.mode === "messages") {
        const result = await readMessagesStream(response, started);
        answered(response, { usageText: messagesUsage(result), elapsedMs: elapsed(), ttftMs: result.ttftMs });
      } else {
        const result = await readChatStream(response, started);
        answered(response, { usageText: chatUsage(result), elapsedMs: elapsed(), ttftMs: result.ttftMs });
      }
      return;
    }
    if (response.ok && req.mode === "speech" && type.startsWith("audio/")) {
      await playSpeech(response);
      const cost = response.headers.get("X-DF-Cost");
      answered(response, {
        usageText: `Speech from ${response.headers.get("X-DF-Upstream-Model") || "the listing"}` +
          (cost ? `, cost $${cost}` : ""),
        elapsedMs: elapsed(), ttftMs: null,
      });
      return;
    }
    const payload = await response.json().catch(() => null);
    if (response.ok && req.mode === "chat" && payload && Array.isArray(payload.choices)) {
      const choice = payload.choices[0] || {};
      $("pg-answer").hidden = false;
      $("pg-answer").textContent = (choice.message && choice.message.content) || "";
      answered(response, {
        usageText: chatUsage({ model: payload.model, usage: payload.usage, finish: choice.finish_reason }),
        elapsedMs: elapsed(), ttftMs: null,
      });
    } else if (response.ok && req.mode === "messages" && payload && Array.isArray(payload.content)) {
      $("pg-answer").hidden = false;
      $("pg-answer").textContent = payload.content
        .filter((block) => block.type === "text").map((block) => block.text).join("");
      answered(response, {
        usageText: messagesUsage({ model: payload.model, usage: payload.usage, finish: payload.stop_reason }),
        elapsedMs: elapsed(), ttftMs: null,
      });
    } else {
      failed(payload, "The answer was not JSON.");
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const invalid = check();
    if (invalid) {
      const details = invalid.closest("details");
      if (details) details.open = true;
      invalid.focus();
      status.textContent = "Nothing was sent: fix the fields marked in red.";
      return;
    }
    const req = request(new FormData(form));
    send.disabled = true;
    status.textContent = "Sending…";
    const started = performance.now();
    try {
      const response = await fetch(form.dataset.api + req.path, {
        method: "POST", headers: req.headers, body: req.body, credentials: "omit", cache: "no-store",
      });
      start(response);
      showSent(req.headers);
      await handle(req, response, started);
      status.textContent = "";
    } catch (err) {
      status.textContent = "The request did not complete: " + err.message;
    } finally {
      send.disabled = false;
    }
  });
})();
