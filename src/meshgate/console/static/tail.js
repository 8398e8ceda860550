// The live tail: polls /api/tail for the rows after the last one shown (meshgate's own code).
(function () {
  "use strict";
  var table = document.getElementById("tail");
  var body = table.querySelector("tbody");
  var status = document.getElementById("tail-status");
  var hostInput = document.getElementById("tail-host");
  var pause = document.getElementById("tail-pause");
  var last = 0;
  var MAX_ROWS = 500;
  var COLUMNS = ["start_time", "reporter", "pod", "method", "authority", "response_code",
    "response_flags", "duration", "upstream_cluster", "reason"];

  function cell(value) {
    var td = document.createElement("td");
    td.textContent = value === null || value === undefined ? "-" : String(value);
    return td;
  }

  function add(entry) {
    var tr = document.createElement("tr");
    tr.className = "entry " + (entry.reason ? "blocked" : "");
    tr.dataset.host = entry.authority || "";
    tr.dataset.reporter = entry.reporter || "";
    COLUMNS.forEach(function (k) {
      var v = k === "pod" ? entry.namespace + "/" + entry.pod : entry[k];
      var td = cell(v);
      if (k === "start_time" && v) {  // the time of day; the full timestamp on hover
        td.textContent = String(v).slice(11, 23);
        td.title = String(v);
      }
      tr.appendChild(td);
    });
    body.appendChild(tr);
    while (body.rows.length > MAX_ROWS) { body.deleteRow(0); }
  }

  function poll() {
    if (pause.checked) { setTimeout(poll, 1000); return; }
    var q = "?after=" + last + (hostInput.value ? "&host=" + encodeURIComponent(hostInput.value) : "");
    fetch("/api/tail" + q, {credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) {
        data.entries.forEach(add);
        last = Math.max(last, data.last);
        status.textContent = "live · " + body.rows.length + " rows";
      })
      .catch(function (err) { status.textContent = "paused: " + err.message; })
      .then(function () { setTimeout(poll, 1000); });
  }

  hostInput.addEventListener("change", function () {
    while (body.rows.length) { body.deleteRow(0); }
    last = 0;
  });
  document.getElementById("tail-filter").addEventListener("submit", function (e) {
    e.preventDefault();
  });
  poll();
})();
