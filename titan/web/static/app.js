"use strict";
// The Titan dashboard: one server-sent event stream (/api/events) brings a snapshot, then every change.
// The page keeps a model of the cluster, applies each message to it and redraws what changed.
// Files, loaded in this order: app.js (the stream, the model, the sidebar), graph.js (DAG cards),
// panel.js (the job panel, actions, permalinks), table.js (the job table), timeline.js (Gantt charts).

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const RETRYABLE = new Set(["FAILED", "CANCELLED"]);
const STATE_ORDER = ["PENDING", "QUEUED", "RUNNING", "WAITING_APPROVAL", "COMPLETED", "FAILED", "CANCELLED"];
const SINGLE_JOBS = "";          // the model's key for jobs submitted without a DAG
const SVG_NS = "http://www.w3.org/2000/svg";

const model = { stats: {}, master: {}, dags: new Map() };   // dag name -> {dag, finished, jobs: Map}
// all: every DAG card (a snapshot); sidebar: workers, counts, master (stats come every few seconds, and
// redrawing 100 DAG cards for them would take the page most of a second); dags: the cards that changed.
const dirty = { all: true, sidebar: true, dags: new Set() };

// ------------------------------------------------------------------ the stream

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => setStreamStatus(true);
  source.onerror = () => setStreamStatus(false);   // EventSource retries by itself; a snapshot follows
  source.onmessage = (message) => receive(JSON.parse(message.data));
}

function receive(message) {
  if (message.type === "snapshot") applySnapshot(message);
  else if (message.type === "event") applyEvent(message.event);
  else if (message.type === "dag") setDag(message);
  else if (message.type === "stats") { model.stats = message.stats; model.master = message.master; dirty.sidebar = true; }
  else if (message.type === "master") { model.master = message; dirty.sidebar = true; }
  scheduleRender();
}

function applySnapshot(snapshot) {
  model.stats = snapshot.stats || {};
  model.master = snapshot.master || {};
  model.dags.clear();
  snapshot.dags.forEach(setDag);
  setDag({ dag: SINGLE_JOBS, finished: false, jobs: snapshot.single_jobs || [] });
  dirty.all = true;
}

function setDag(message) {
  const jobs = new Map(message.jobs.map((job) => [job.job_id, job]));
  model.dags.delete(message.dag);          // re-inserted: newest last
  model.dags.set(message.dag, { dag: message.dag, finished: message.finished, jobs });
  dirty.dags.add(message.dag);
}

function applyEvent(event) {
  if (event.topic === "dag.finished" && model.dags.has(event.dag)) {
    model.dags.get(event.dag).finished = true;
    dirty.dags.add(event.dag);
  } else if (event.topic.startsWith("job.")) {
    applyJobEvent(event);
  }
}

function applyJobEvent(event) {
  const key = event.dag || SINGLE_JOBS;
  if (!model.dags.has(key)) return;          // the server sends its shape first; nothing to draw it in yet
  const dag = model.dags.get(key);
  const job = dag.jobs.get(event.job_id) || { job_id: event.job_id, dag: null, parents: [], requirement: null };
  for (const field of ["state", "attempt", "worker", "reason", "exit_code"]) job[field] = event[field];
  dag.jobs.set(event.job_id, job);
  if (!FINAL.has(event.state)) dag.finished = false;     // a retried job opens its DAG again
  dirty.dags.add(key);
}

// ------------------------------------------------------------------ drawing

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function render() {
  if (dirty.all || dirty.sidebar) {
    renderMaster();
    renderWorkers();
    renderCounts();
  }
  renderGates();
  renderDags(dirty.all ? new Set(model.dags.keys()) : dirty.dags);
  renderPanelFacts();
  refreshTimelines(dirty.all ? new Set(model.dags.keys()) : dirty.dags);
  dirty.all = dirty.sidebar = false;
  dirty.dags.clear();
}

function renderMaster() {
  const status = document.getElementById("master-status");
  const master = model.master;
  status.dataset.up = String(Boolean(master.up));
  status.textContent = master.up ? `master up · run ${String(master.run_id || "").slice(0, 8)}`
    : `master unreachable${master.error ? ": " + master.error : ""}`;
}

function setStreamStatus(connected) {
  const status = document.getElementById("stream-status");
  status.dataset.connected = String(connected);
  status.textContent = connected ? "" : "reconnecting to the dashboard…";
}

function renderWorkers() {
  const workers = [...(model.stats.workers || [])].sort((a, b) => a.name.localeCompare(b.name));
  document.getElementById("worker-count").textContent = String(workers.length);
  const box = document.getElementById("workers");
  box.replaceChildren();
  if (!workers.length) box.append(el("p", { class: "empty" }, "No worker connected."));
  for (const worker of workers) box.append(workerRow(worker));
}

function workerRow(worker) {
  const used = (worker.running || []).length;
  const chips = el("div", { class: "chips" });
  for (const cap of worker.capabilities) chips.append(el("span", { class: cap === "GENERAL" ? "chip" : "chip special" }, cap));
  return el("div", { class: "worker", "data-worker": worker.name, "data-used": used, "data-slots": worker.slots },
    el("div", { class: "worker-head" }, el("span", {}, worker.name),
      el("span", { class: "worker-load" }, `load ${Number(worker.load || 0).toFixed(2)}`)),
    chips,
    meter("slots", (100 * used) / worker.slots, `${used}/${worker.slots} slots`),
    ...hostMeters(worker.usage));
}

// The host's figures from the worker's last heartbeat (none from a worker too old to send them).
function hostMeters(usage) {
  if (!usage) return [el("div", { class: "meter-note" }, "host figures not reported")];
  const gib = (bytes) => (bytes / 2 ** 30).toFixed(1);
  return [meter("cpu", usage.cpu_percent, `CPU ${Math.round(usage.cpu_percent)}%`),
    meter("memory", usage.memory_percent,
      `mem ${Math.round(usage.memory_percent)}% · ${gib(usage.memory_used_bytes)}/${gib(usage.memory_total_bytes)} GiB`)];
}

function meter(kind, percent, label) {
  const width = Math.max(0, Math.min(100, percent));
  return el("div", { class: `meter meter-${kind}`, "data-meter": kind, "data-percent": Math.round(width) },
    el("div", { class: "bar" }, el("span", { style: `width:${width}%` })), el("span", {}, label));
}

function renderCounts() {
  const counts = model.stats.jobs_by_state || {};
  const list = document.getElementById("job-counts");
  list.replaceChildren();
  for (const state of STATE_ORDER) {
    list.append(el("dt", { "data-state": state }, state.toLowerCase().replace("_", " ")),
      el("dd", { id: `count-${state}` }, String(counts[state] || 0)));
  }
  const queues = document.getElementById("queues");
  queues.replaceChildren();
  const byRequirement = Object.entries(model.stats.queued_by_requirement || {});
  if (!byRequirement.length) queues.append(el("dt", { class: "empty" }, "nothing queued"), el("dd"));
  for (const [requirement, count] of byRequirement) {
    queues.append(el("dt", {}, requirement), el("dd", { "data-requirement": requirement }, String(count)));
  }
}

function renderGates() {
  const waiting = [];
  for (const dag of model.dags.values()) {
    for (const job of dag.jobs.values()) if (job.state === "WAITING_APPROVAL") waiting.push(job);
  }
  const box = document.getElementById("gates");
  const shown = [...box.children].map((child) => child.dataset.gateId).join(",");
  if (shown === waiting.map((job) => job.job_id).join(",")) return;   // keep buttons (and clicks) stable
  document.getElementById("gates-panel").hidden = !waiting.length;
  box.replaceChildren(...waiting.map(gateCard));
}

function gateCard(job) {
  const approve = el("button", { class: "approve", type: "button", "data-action": "approve", "data-gate-id": job.job_id }, "Approve");
  const reject = el("button", { class: "reject", type: "button", "data-action": "reject", "data-gate-id": job.job_id }, "Reject");
  const cancel = el("button", { type: "button", "data-action": "cancel", "data-gate-id": job.job_id }, "Cancel");
  approve.onclick = () => decide(job.job_id, "approve", [approve, reject, cancel]);
  reject.onclick = () => decide(job.job_id, "reject", [approve, reject, cancel]);
  cancel.onclick = () => act("jobs", job.job_id, "cancel", [approve, reject, cancel]);
  return el("div", { class: "gate", "data-gate-id": job.job_id },
    el("div", { class: "gate-name" }, el("a", { href: jobLink(job.job_id) }, job.job_id), job.dag ? ` · ${job.dag}` : ""),
    el("p", { class: "gate-reason" }, job.reason || ""),
    el("div", { class: "gate-actions" }, approve, reject, cancel));
}

// ------------------------------------------------------------------ tabs

function showTab(name) {
  for (const tab of document.querySelectorAll("[data-tab]")) {
    const active = tab.dataset.tab === name;
    tab.setAttribute("aria-selected", String(active));
    document.getElementById(`${tab.dataset.tab}-view`).hidden = !active;
  }
  if (name === "jobs") loadJobTable();
}

// ------------------------------------------------------------------ helpers

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

function svgEl(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// The card that draws a job: redrawn when the job is selected or unselected.
function markJobDirty(jobId) {
  for (const [name, dag] of model.dags) if (dag.jobs.has(jobId)) dirty.dags.add(name);
}

function findJob(jobId) {
  for (const dag of [...model.dags.values()].reverse()) if (dag.jobs.has(jobId)) return dag.jobs.get(jobId);
  return null;
}

function stateLabel(state) {
  return String(state || "").toLowerCase().replace("_", " ");
}

window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("log-close").addEventListener("click", closePanel);
  for (const tab of document.querySelectorAll("[data-tab]")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  setUpJobTable();
  actionToken();
  window.addEventListener("hashchange", followPermalink);
  connect();
  followPermalink();
});
