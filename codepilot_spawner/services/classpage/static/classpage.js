// The class page: polls api/class and updates the table's rows in place (no reload).
"use strict";
(() => {
  const POLL_MS = 2000;
  const base = location.pathname.replace(/[^/]*$/, "");
  // JupyterHub's service auth wants the token on every fetch made with its cookie.
  const xsrf = document.querySelector('meta[name="xsrf"]').content;
  const rowsEl = document.getElementById("rows");
  const notice = document.getElementById("notice");
  const summary = document.getElementById("summary");
  const updated = document.getElementById("updated");
  const filter = document.getElementById("filter");
  const starter = document.getElementById("default-starter");
  const rowById = new Map();

  function el(tag, attrs = {}, text = "") {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  function ago(iso) {
    if (!iso) return "never";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return `${Math.floor(seconds / 86400)} d ago`;
  }

  function syncCell(cell, sync) {
    cell.replaceChildren();
    cell.className = "sync";
    if (!sync) return;
    let text, kind = "ok";
    if (sync.unreachable) { text = "not answering"; kind = "bad"; }
    else if (sync.storage === "local") { text = "local disk"; }
    else if (sync.state === "stalled" || sync.state === "error") { text = `${sync.state}, ${sync.pending} pending`; kind = "bad"; }
    else if (sync.pending) { text = `${sync.pending} pending`; kind = "pending"; }
    else { text = sync.state === "idle" ? "synced" : sync.state || "synced"; }
    cell.classList.add(kind);
    cell.append(el("span", {}, text));
    if (sync.error) {
      const detail = el("span", { class: "detail", title: sync.error }, sync.error);
      cell.append(detail);
    }
  }

  function render(row) {
    let tr = rowById.get(row.id);
    if (!tr) {
      tr = el("tr", { "data-id": row.id });
      for (const name of ["user", "server", "status", "activity", "sync", "run", "preview", "actions"]) {
        tr.append(el("td", { class: name }));
      }
      rowById.set(row.id, tr);
    }
    const [user, server, state, activity, sync, run, preview, actions] = tr.children;
    user.textContent = row.user;
    server.textContent = row.server || "default";
    state.replaceChildren(el("span", { class: `state ${row.state}` }, row.state));
    activity.textContent = ago(row.last_activity);
    activity.title = row.last_activity || "";
    syncCell(sync, row.sync);
    // Buttons name their student and project for screen readers ("Stop amira's web").
    const whose = `${row.user}'s ${row.server || "default project"}`;
    runCell(run, row, whose);
    preview.replaceChildren();
    if (row.preview_url && row.share_words) {
      preview.append(el("span", { class: "share", title: "Who can open the preview" }, row.share_words));
    }
    actions.replaceChildren();
    if (row.ide_url) {
      actions.append(el("a", { class: "button", href: row.ide_url, target: "_blank", rel: "noopener", "aria-label": `Open ${whose} in the IDE` }, "Open IDE"));
      actions.append(el("a", { class: "button", href: row.preview_url, target: "_blank", rel: "noopener noreferrer", "aria-label": `Open the preview of ${whose}` }, "Open preview"));
    }
    const busy = row.state === "starting" || row.state === "stopping";
    const action = row.state === "stopped" ? "start" : "stop";
    const button = el("button", { class: action, "data-action": action, "aria-label": `${action === "start" ? "Start" : "Stop"} ${whose}` }, action === "start" ? "Start" : "Stop");
    button.disabled = busy;
    button.onclick = () => act(`api/servers/${encodeURIComponent(row.user)}/${encodeURIComponent(row.server)}/${action}`, `${action} ${row.user}`, button);
    actions.append(button);
    tr.hidden = !matches(row);
    tr.dataset.state = row.state;
    return tr;
  }

  // The app's run state in the status bar's words, and what a teacher may do with it.
  const RUN_BUTTONS = { running: ["stop", "restart"], starting: ["stop", "restart"], stopped: ["run"], crashed: ["run"] };
  const RUN_TEXT = { run: "Run", stop: "Stop", restart: "Restart" };
  function runCell(cell, row, whose) {
    cell.replaceChildren();
    if (!row.run) return;
    cell.append(el("span", { class: `run-state ${row.run.state}`, title: row.run.command }, row.run.label));
    for (const action of RUN_BUTTONS[row.run.state] || []) {
      const button = el("button", { class: `run-action ${action}`, "data-run": action, "aria-label": `${RUN_TEXT[action]} the app of ${whose}` }, RUN_TEXT[action]);
      button.onclick = () => act(`api/runs/${encodeURIComponent(row.user)}/${encodeURIComponent(row.server)}/${action}`, `${RUN_TEXT[action]} ${row.user}'s app`, button);
      cell.append(button);
    }
  }

  function matches(row) {
    const text = filter.value.trim().toLowerCase();
    return !text || row.user.toLowerCase().includes(text) || row.server.toLowerCase().includes(text);
  }

  async function act(path, what, button) {
    button.disabled = true;
    const response = await fetch(base + path, { method: "POST", headers: { "X-XSRFToken": xsrf } });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      show(`${what}: ${body.message || response.status}`);
    }
    poll();
  }

  function show(message) {
    notice.textContent = message;
    notice.hidden = !message;
  }

  let last = [];
  function apply(snapshot) {
    last = snapshot.rows;
    const seen = new Set();
    const ordered = snapshot.rows.map((row) => { seen.add(row.id); return render(row); });
    for (const [id, tr] of rowById) if (!seen.has(id)) { tr.remove(); rowById.delete(id); }
    // Re-append only when the order changed: rows keep focus and hover otherwise.
    if (ordered.some((tr, i) => rowsEl.children[i] !== tr)) rowsEl.replaceChildren(...ordered);
    if (!snapshot.rows.length) rowsEl.replaceChildren(Object.assign(el("tr"), { innerHTML: '<td colspan="8" class="empty">No students yet: they appear here when the admin adds them or they log in.</td>' }));
    const students = new Set(snapshot.rows.map((row) => row.user)).size;
    const running = snapshot.rows.filter((row) => row.state === "running").length;
    // A live region is read out at each change: the counts only, and only when they change.
    const counts = `${students} students · ${running} servers running`;
    if (summary.textContent !== counts) summary.textContent = counts;
    updated.textContent = snapshot.updated ? `· updated ${new Date(snapshot.updated).toLocaleTimeString()}` : "";
    if (snapshot.error) show(snapshot.error); else if (notice.dataset.kind !== "action") show("");
  }

  let timer = null;
  async function poll() {
    clearTimeout(timer);
    try {
      const response = await fetch(base + "api/class", { cache: "no-store", headers: { "X-XSRFToken": xsrf } });
      if (response.status === 403 || response.redirected) { show("Your session ended: reload to sign in again."); return; }
      apply(await response.json());
    } catch (error) {
      show(`Could not reach the class page: ${error}`);
    }
    timer = setTimeout(poll, document.hidden ? POLL_MS * 5 : POLL_MS);
  }

  async function loadStarter() {
    const response = await fetch(base + "api/default-starter", { cache: "no-store", headers: { "X-XSRFToken": xsrf } });
    if (!response.ok) return;
    const { starter: current, choices } = await response.json();
    for (const name of choices) starter.append(el("option", { value: name }, name));
    starter.value = current;
  }
  starter.onchange = async () => {
    const response = await fetch(base + "api/default-starter", {
      method: "PUT", headers: { "X-XSRFToken": xsrf, "Content-Type": "application/json" },
      body: JSON.stringify({ starter: starter.value }),
    });
    if (!response.ok) show(`Could not set the default starter: ${(await response.json()).message}`);
  };
  filter.oninput = () => { for (const row of last) rowById.get(row.id).hidden = !matches(row); };
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
  loadStarter();
  poll();
})();
