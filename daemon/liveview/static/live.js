// Live count page: follows the server-sent events of one count session and redraws
// the counts and lists in place. Only textContent is used for data, never innerHTML,
// so nothing a register or a tag carries can become markup.
"use strict";

(function () {
  const body = document.body;
  const eventsUrl = body.dataset.events;
  if (!eventsUrl) return;
  const $ = (id) => document.getElementById(id);
  let snap = null;

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text == null ? "" : String(text);
    return td;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    for (const c of cells) tr.appendChild(cell(c));
    return tr;
  }

  function under(path, root) {
    return path === root || path.startsWith(root + "/");
  }

  function inScope(path) {
    return !!path && snap.scope.some((root) => under(path, root));
  }

  function currentFilter() {
    const value = $("filter").value;
    if (value === "@context") return inScope(snap.location_context) ? snap.location_context : "";
    return value;
  }

  function renderFilterOptions() {
    const select = $("filter");
    const keep = select.value;
    const wanted = ["@context", ""].concat(snap.locations.map((r) => r.location));
    const have = Array.from(select.options).map((o) => o.value);
    if (wanted.join("\n") === have.join("\n")) return;
    while (select.options.length > 2) select.remove(2);
    for (const r of snap.locations) {
      const opt = document.createElement("option");
      opt.value = r.location;
      opt.textContent = r.location;
      select.appendChild(opt);
    }
    select.value = wanted.includes(keep) ? keep : "@context";
  }

  function renderLocations() {
    const tbody = $("locations");
    const rows = [];
    for (const r of snap.locations) {
      const tr = document.createElement("tr");
      tr.dataset.location = r.location;
      tr.className = "depth-" + Math.min(r.depth, 5);
      const name = cell(r.location.split("/").pop());
      name.className = "loc";
      tr.appendChild(name);
      const bar = document.createElement("progress");
      bar.max = r.expected || 1;
      bar.value = r.seen;
      const td = document.createElement("td");
      td.appendChild(bar);
      tr.appendChild(td);
      tr.appendChild(cell(r.seen + "/" + r.expected));
      tr.appendChild(cell(r.not_yet_seen));
      tr.appendChild(cell(r.unexpected));
      if (r.location === snap.location_context) tr.classList.add("here");
      rows.push(tr);
    }
    tbody.replaceChildren(...rows);
  }

  function renderLists() {
    const filter = currentFilter();
    const missing = snap.not_yet_seen.filter((a) => !filter || under(a.location, filter));
    $("not-yet-seen").replaceChildren(
      ...missing.map((a) =>
        row([a.asset_tag, a.serial, a.model, a.location + (a.position ? " · " + a.position : "")])
      )
    );
    $("nys-shown").textContent = String(missing.length) + (snap.not_yet_seen_truncated ? "+" : "");
    const odd = snap.unexpected.filter((u) => !filter || under(u.seen_at, filter));
    $("unexpected").replaceChildren(
      ...odd.map((u) =>
        row([u.asset_tag || u.serial || u.epc, u.seen_at, u.expected_at || "not in register",
             u.reason.replaceAll("_", " ")])
      )
    );
    $("unexpected-shown").textContent = String(odd.length);
  }

  function render() {
    const t = snap.totals;
    $("nys-total").textContent = String(t.not_yet_seen);
    $("seen-total").textContent = String(t.seen);
    $("expected-total").textContent = String(t.expected);
    $("unexpected-total").textContent = String(t.unexpected);
    $("context").textContent = snap.location_context || "not set";
    document.title = t.not_yet_seen + " not yet seen · " + snap.session_id;
    renderFilterOptions();
    renderLocations();
    renderLists();
    if (snap.closed) setConnection("closed", "session closed");
  }

  function renderHealth(readers) {
    $("health").replaceChildren(
      ...readers.map((h) => {
        const li = document.createElement("li");
        li.className = "state-" + h.state;
        li.textContent = h.name + " (" + h.kind + "): " + h.state + " · " + h.reads_per_s + " reads/s";
        return li;
      })
    );
  }

  function setConnection(state, text) {
    const el = $("connection");
    el.className = "connection " + state;
    el.textContent = text;
  }

  $("filter").addEventListener("change", () => snap && renderLists());
  $("locations").addEventListener("click", (ev) => {
    const tr = ev.target.closest("tr");
    if (tr && tr.dataset.location) {
      $("filter").value = tr.dataset.location;
      if (snap) renderLists();
    }
  });

  const source = new EventSource(eventsUrl);
  source.addEventListener("open", () => setConnection("live", "live"));
  source.addEventListener("error", () => {
    if (!snap || !snap.closed) setConnection("offline", "reconnecting…");
  });
  source.addEventListener("snapshot", (ev) => {
    snap = JSON.parse(ev.data);
    render();
    if (snap.closed) source.close();
  });
  source.addEventListener("health", (ev) => renderHealth(JSON.parse(ev.data).readers));
})();
