"use strict";
// The Titan dashboard: one server-sent event stream (/api/events) brings a snapshot, then every change.
// The page keeps a model of the cluster, applies each message to it and redraws what changed.

const FINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const STATE_ORDER = ["PENDING", "QUEUED", "RUNNING", "WAITING_APPROVAL", "COMPLETED", "FAILED", "CANCELLED"];
const SINGLE_JOBS = "";          // the model's key for jobs submitted without a DAG
const NODE = { width: 168, height: 44, gapX: 56, gapY: 14, pad: 10 };
const SVG_NS = "http://www.w3.org/2000/svg";
const LOG_POLL_MS = 700;
const MIN_SCALE = 0.7;

const model = { stats: {}, master: {}, dags: new Map() };   // dag name -> {dag, finished, jobs: Map}
const dirty = { all: true, dags: new Set() };
let selectedJob = null;
let logPoll = null;

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
  else if (message.type === "stats") { model.stats = message.stats; model.master = message.master; dirty.all = true; }
  else if (message.type === "master") { model.master = message; dirty.all = true; }
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
  const jobs = model.dags.get(key).jobs;
  const job = jobs.get(event.job_id) || { job_id: event.job_id, dag: null, parents: [], requirement: null };
  for (const field of ["state", "attempt", "worker", "reason", "exit_code"]) job[field] = event[field];
  jobs.set(event.job_id, job);
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
  if (dirty.all) {
    renderMaster();
    renderWorkers();
    renderCounts();
  }
  renderGates();
  renderDags(dirty.all ? new Set(model.dags.keys()) : dirty.dags);
  if (selectedJob) renderLogFacts();
  dirty.all = false;
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
  const bar = el("div", { class: "bar" }, el("span", { style: `width:${Math.min(100, (100 * used) / worker.slots)}%` }));
  return el("div", { class: "worker", "data-worker": worker.name, "data-used": used, "data-slots": worker.slots },
    el("div", { class: "worker-head" }, el("span", {}, worker.name),
      el("span", { class: "worker-load" }, `load ${Number(worker.load || 0).toFixed(2)}`)),
    chips,
    el("div", { class: "slots" }, bar, el("span", {}, `${used}/${worker.slots} slots`)));
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
  approve.onclick = () => decide(job.job_id, "approve", [approve, reject]);
  reject.onclick = () => decide(job.job_id, "reject", [approve, reject]);
  return el("div", { class: "gate", "data-gate-id": job.job_id },
    el("div", { class: "gate-name" }, job.job_id + (job.dag ? ` · ${job.dag}` : "")),
    el("p", { class: "gate-reason" }, job.reason || ""),
    el("div", { class: "gate-actions" }, approve, reject));
}

// The token printed at start (in the page's address): actions must carry it. Kept for this tab only, and
// taken out of the address bar so it is not shared along with a link.
function actionToken() {
  const fromAddress = new URLSearchParams(window.location.search).get("token");
  if (fromAddress) {
    window.sessionStorage.setItem("titan-token", fromAddress);
    window.history.replaceState(null, "", window.location.pathname + window.location.hash);
  }
  return window.sessionStorage.getItem("titan-token") || "";
}

async function decide(gateId, verb, buttons) {
  let body = {};
  if (verb === "reject") {
    const reason = window.prompt(`Why reject ${gateId}?`, "");
    if (reason === null) return;
    body = { reason };
  }
  buttons.forEach((button) => { button.disabled = true; });
  const response = await fetch(`/api/gates/${encodeURIComponent(gateId)}/${verb}`, {
    method: "POST", headers: { "Content-Type": "application/json", "X-Titan-Token": actionToken() },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    window.alert(`${verb} ${gateId}: ${answer.error || response.statusText}`);
    buttons.forEach((button) => { button.disabled = false; });
  }
}

// ------------------------------------------------------------------ DAG graphs

function renderDags(names) {
  const box = document.getElementById("dags");
  const placeholder = box.querySelector(".empty");
  for (const name of names) {
    const dag = model.dags.get(name);
    const old = box.querySelector(`.dag-card[data-dag="${CSS.escape(name)}"]`);
    if (!dag || !dag.jobs.size) { if (old) old.remove(); continue; }
    const card = dagCard(dag);
    if (old) old.replaceWith(card);
    else if (name === SINGLE_JOBS) box.append(card);
    else box.prepend(card);          // newest on top, jobs without a DAG at the bottom
  }
  const anyCard = box.querySelector(".dag-card");
  if (placeholder && anyCard) placeholder.remove();
}

function dagCard(dag) {
  const jobs = [...dag.jobs.values()];
  const counts = {};
  for (const job of jobs) counts[job.state] = (counts[job.state] || 0) + 1;
  const failed = (counts.FAILED || 0) + (counts.CANCELLED || 0) > 0;
  const title = dag.dag === SINGLE_JOBS ? "Jobs without a DAG" : dag.dag;
  const badge = dag.dag === SINGLE_JOBS ? `${jobs.length} job${jobs.length === 1 ? "" : "s"}` : dag.finished ? (failed ? "finished with failures" : "finished") : "running";
  const progress = el("div", { class: "progress" });
  for (const state of STATE_ORDER) {
    if (counts[state]) progress.append(el("span", { "data-state": state, style: `flex:${counts[state]}` }));
  }
  const summary = STATE_ORDER.filter((s) => counts[s]).map((s) => `${counts[s]} ${s.toLowerCase().replace("_", " ")}`).join(" · ");
  return el("article", { class: "dag-card", "data-dag": dag.dag, "data-finished": String(dag.finished), "data-outcome": failed ? "failed" : "ok" },
    el("div", { class: "dag-head" }, el("h2", { class: "dag-name" }, title), el("span", { class: "dag-badge" }, badge),
      el("span", { class: "dag-summary" }, summary)),
    progress,
    el("div", { class: "graph" }, dagSvg(dag)));
}

function layout(dag) {
  // Column = depth from the roots (longest path), so every edge points right; rows follow parents' rows.
  const jobs = dag.jobs;
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    seen.add(id);
    const parents = (jobs.get(id).parents || []).filter((p) => jobs.has(p) && !seen.has(p));
    const d = parents.length ? 1 + Math.max(...parents.map((p) => depthOf(p, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  const columns = [];
  if (dag.dag === SINGLE_JOBS) {
    [...jobs.keys()].forEach((id, i) => { (columns[i % 4] ||= []).push(id); });
  } else {
    for (const id of jobs.keys()) (columns[depthOf(id)] ||= []).push(id);
  }
  const row = new Map();
  columns.forEach((ids, x) => {
    const mean = (id) => { const rows = (jobs.get(id).parents || []).filter((p) => row.has(p)).map((p) => row.get(p));
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0; };
    if (x > 0 && dag.dag !== SINGLE_JOBS) ids.sort((a, b) => mean(a) - mean(b));
    ids.forEach((id, y) => row.set(id, y));
  });
  const position = new Map();
  columns.forEach((ids, x) => ids.forEach((id, y) => position.set(id, {
    x: NODE.pad + x * (NODE.width + NODE.gapX), y: NODE.pad + y * (NODE.height + NODE.gapY) })));
  const rows = Math.max(1, ...columns.map((ids) => ids.length));
  return { position, width: 2 * NODE.pad + columns.length * NODE.width + (columns.length - 1) * NODE.gapX,
    height: 2 * NODE.pad + rows * NODE.height + (rows - 1) * NODE.gapY };
}

function dagSvg(dag) {
  const { position, width, height } = layout(dag);
  // Wide DAGs shrink to the card down to MIN_SCALE, then scroll sideways.
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `DAG ${dag.dag}`,
    style: `width:100%;max-width:${width}px;min-width:${Math.round(width * MIN_SCALE)}px` });
  for (const job of dag.jobs.values()) {
    for (const parent of job.parents || []) {
      if (position.has(parent)) svg.append(edge(position.get(parent), position.get(job.job_id), parent, job.job_id));
    }
  }
  for (const job of dag.jobs.values()) svg.append(jobNode(job, position.get(job.job_id)));
  return svg;
}

function edge(from, to, parent, child) {
  const x1 = from.x + NODE.width, y1 = from.y + NODE.height / 2, x2 = to.x, y2 = to.y + NODE.height / 2;
  const bend = (x2 - x1) / 2;
  return svgEl("path", { class: "edge", "data-from": parent, "data-to": child,
    d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` });
}

function jobNode(job, at) {
  const label = job.job_id.length > 22 ? job.job_id.slice(0, 21) + "…" : job.job_id;
  const detail = job.state === "RUNNING" && job.worker ? `RUNNING · ${job.worker}` : job.state.replace("_", " ");
  const node = svgEl("g", { class: "job-node" + (job.job_id === selectedJob ? " selected" : ""), "data-job-id": job.job_id,
    "data-state": job.state, id: `job-${job.dag || "single"}-${job.job_id}`, transform: `translate(${at.x},${at.y})`, tabindex: "0" },
  svgEl("title", {}, `${job.job_id}: ${job.state}${job.reason ? " — " + job.reason : ""}`),
  svgEl("rect", { width: NODE.width, height: NODE.height, rx: 7 }),
  svgEl("rect", { class: "band", width: 6, height: NODE.height - 2, x: 1, y: 1, rx: 3 }),
  svgEl("text", { class: "name", x: 16, y: 19 }, label),
  svgEl("text", { class: "state", x: 16, y: 35 }, detail));
  node.addEventListener("click", () => openLogs(job.job_id));
  node.addEventListener("keydown", (key) => { if (key.key === "Enter") openLogs(job.job_id); });
  return node;
}

// ------------------------------------------------------------------ logs

function findJob(jobId) {
  for (const dag of [...model.dags.values()].reverse()) if (dag.jobs.has(jobId)) return dag.jobs.get(jobId);
  return null;
}

function openLogs(jobId) {
  selectedJob = jobId;
  const panel = document.getElementById("log-panel");
  panel.hidden = false;
  panel.dataset.jobId = jobId;
  document.getElementById("log-title").textContent = jobId;
  document.getElementById("log-text").textContent = "";
  renderLogFacts();
  dirty.all = true;
  scheduleRender();
  if (logPoll) clearTimeout(logPoll);
  pollLogs(jobId, 0);
}

async function pollLogs(jobId, offset) {
  if (selectedJob !== jobId) return;
  let next = offset, state = null;
  try {
    const response = await fetch(`/api/logs?job=${encodeURIComponent(jobId)}&offset=${offset}`);
    const answer = await response.json();
    if (selectedJob !== jobId) return;
    if (!response.ok) throw new Error(answer.error || response.statusText);
    appendLog(answer.text, answer.skipped);
    next = answer.offset;
    state = answer.state;
  } catch (error) {
    document.getElementById("log-facts").textContent = `logs unavailable: ${error.message}`;
  }
  document.getElementById("log-panel").dataset.logState = state || "";
  if (!FINAL.has(state)) logPoll = setTimeout(() => pollLogs(jobId, next), LOG_POLL_MS);
}

function appendLog(text, skipped) {
  const box = document.getElementById("log-text");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  if (skipped) box.append(`… ${skipped} characters not shown …\n`);
  if (text) box.append(text);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderLogFacts() {
  const job = findJob(selectedJob);
  if (!job) return;
  const facts = [job.state, job.worker && `on ${job.worker}`, job.attempt && `attempt ${job.attempt}`,
    job.exit_code !== null && job.exit_code !== undefined && `exit ${job.exit_code}`, job.reason].filter(Boolean);
  const line = document.getElementById("log-facts");
  line.textContent = facts.join(" · ");
  line.dataset.state = job.state;
}

function closeLogs() {
  selectedJob = null;
  if (logPoll) clearTimeout(logPoll);
  document.getElementById("log-panel").hidden = true;
  dirty.all = true;
  scheduleRender();
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

document.getElementById("log-close").addEventListener("click", closeLogs);
actionToken();
connect();
