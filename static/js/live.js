// Live pages (live/consumers.py): the element with data-live-socket names the page's websocket.
// Messages fill elements by data attributes; rows are built with textContent only. Without
// websockets (or JavaScript) the page stays the snapshot it was rendered as. A dropped socket
// (a server restart) reconnects with exponential backoff and jitter, asking for the rows it missed.
(function () {
  "use strict";
  var state = document.querySelector("[data-live-socket]");
  if (!state || !window.WebSocket) {
    return;
  }
  var attempts = 0;
  // The time of the newest row the page holds (at first, when it was rendered): a socket opened
  // later asks for what settled since.
  var newest = state.getAttribute("data-live-since") || "";
  var stopped = false;
  var NUMERIC = { input: true, output: true, cost: true, ttft_ms: true, latency_ms: true };

  function socketUrl() {
    var path = state.getAttribute("data-live-socket");
    if (newest) {
      path += (path.indexOf("?") < 0 ? "?" : "&") + "after=" + encodeURIComponent(newest);
    }
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  function showState(text, live) {
    state.textContent = text;
    state.hidden = false;
    state.classList.toggle("live-on", live);
  }

  function fill(kind, fields) {
    Object.keys(fields).forEach(function (name) {
      var selector = "[data-live-" + kind + '="' + name + '"]';
      document.querySelectorAll(selector).forEach(function (element) {
        element.textContent = fields[name];
        if (element.hasAttribute("data-live-hide-empty")) {
          element.hidden = !fields[name];
        }
      });
    });
  }

  var CELLS = {
    request: function (row) {
      var link = document.createElement("a");
      var code = document.createElement("code");
      link.href = row.url;
      code.textContent = row.request_id;
      link.appendChild(code);
      return link;
    },
    outcome: function (row) {
      var badge = document.createElement("span");
      badge.className = "badge " + (row.completed ? "ok" : "warn");
      badge.textContent = row.outcome_label;
      return badge;
    },
  };

  function rowElement(row, columns) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-request-id", row.request_id);
    tr.className = "live-new";
    columns.forEach(function (name) {
      var td = document.createElement("td");
      var value = row[name];
      if (NUMERIC[name]) {
        td.className = "num";
      }
      if (CELLS[name]) {
        td.appendChild(CELLS[name](row));
      } else {
        td.textContent = value === null || value === undefined ? "" : String(value);
      }
      tr.appendChild(td);
    });
    return tr;
  }

  function addRows(rows) {
    document.querySelectorAll("[data-live-rows]").forEach(function (body) {
      var columns = body.getAttribute("data-live-rows").split(",");
      var limit = parseInt(body.getAttribute("data-live-limit") || "0", 10);
      rows.forEach(function (row) {
        var known = body.querySelectorAll("tr[data-request-id]");
        for (var i = 0; i < known.length; i++) {
          if (known[i].getAttribute("data-request-id") === row.request_id) {
            return;
          }
        }
        body.insertBefore(rowElement(row, columns), body.firstChild);
      });
      body.querySelectorAll("[data-live-empty]").forEach(function (element) {
        element.remove();
      });
      while (limit && body.rows.length > limit) {
        body.deleteRow(body.rows.length - 1);
      }
    });
    rows.forEach(function (row) {
      if (!newest || Date.parse(row.created) > Date.parse(newest)) {
        newest = row.created;
      }
    });
  }

  function setBadges(selector, status) {
    document.querySelectorAll(selector).forEach(function (badge) {
      badge.className = "badge " + status;
    });
  }

  function handle(message) {
    if (message.type === "wallet") {
      fill("wallet", message.fields);
    } else if (message.type === "requests") {
      addRows(message.rows);
    } else if (message.type === "listing") {
      fill("listing", message.fields);
      setBadges("[data-live-listing-badge]", message.status);
      // The page heading's status badge (templates/market/listing_detail.html) is the first one.
      var heading = document.querySelector("h1 .badge");
      if (heading && !heading.classList.contains(message.status)) {
        // The server's note on the traffic (#traffic-note) described the status it rendered.
        var note = document.getElementById("traffic-note");
        if (note) {
          note.hidden = true;
        }
        heading.className = "badge " + message.status;
        heading.textContent = message.fields.status;
      }
    } else if (message.type === "topup") {
      fill("topup", message.fields);
      document.querySelectorAll("[data-live-topup-when]").forEach(function (element) {
        element.hidden = element.getAttribute("data-live-topup-when") !== message.status;
      });
    } else if (message.type === "gone") {
      stopped = true;
      showState("This listing is gone.", false);
    }
  }

  function connect() {
    var socket = new WebSocket(socketUrl());
    socket.onopen = function () {
      attempts = 0;
      showState("Live: updates as they happen", true);
      document.querySelectorAll("[data-live-only]").forEach(function (element) {
        element.hidden = false;
      });
    };
    socket.onmessage = function (event) {
      handle(JSON.parse(event.data));
    };
    socket.onclose = function () {
      if (stopped) {
        return;
      }
      attempts += 1;
      var delay = Math.min(30000, 1000 * Math.pow(2, attempts - 1)) * (0.5 + Math.random() / 2);
      showState("Reconnecting…", false);
      window.setTimeout(connect, delay);
    };
  }

  connect();
})();
