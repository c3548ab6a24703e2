"use strict";
// The job panel (a drawer over the page: facts, Cancel / Retry, the logs streaming), the actions that
// change the cluster, and permalinks: #job=ID opens a job, #dag=NAME shows a DAG with its timeline.

const LOG_POLL_MS = 700;
let selectedJob = null;
let logPoll = null;

function jobLink(jobId) { return `#job=${encodeURIComponent(jobId)}`; }
function dagLink(name) { return `#dag=${encodeURIComponent(name)}`; }

function followPermalink() {
  const link = new URLSearchParams(window.location.hash.slice(1));
  if (link.has("job")) {
    openJob(link.get("job"));
  } else if (link.has("dag")) {
    showTab("dags");
    showDag(link.get("dag"));
  } else if (selectedJob) {
    closePanel();
  }
}

function showDag(name) {
  const card = document.querySelector(`.dag-card[data-dag="${CSS.escape(name)}"]`);
  if (!card) { setTimeout(() => showDag(name), 300); return; }   // the snapshot may not have come yet
  document.querySelectorAll(".dag-card.linked").forEach((other) => other.classList.remove("linked"));
  card.classList.add("linked");
  card.scrollIntoView({ block: "start" });
  openTimeline(name);
}

// ------------------------------------------------------------------ the panel

function openJob(jobId) {
  if (selectedJob === jobId && !document.getElementById("log-panel").hidden) return;
  if (selectedJob) markJobDirty(selectedJob);
  selectedJob = jobId;
  markJobDirty(jobId);
  const panel = document.getElementById("log-panel");
  panel.hidden = false;
  panel.dataset.jobId = jobId;
  document.getElementById("log-title").textContent = jobId;
  document.getElementById("log-link").href = jobLink(jobId);
  document.getElementById("log-text").textContent = "";
  document.getElementById("log-facts").textContent = "";
  renderPanelFacts();
  scheduleRender();
  if (logPoll) clearTimeout(logPoll);
  pollLogs(jobId, 0);
}

function closePanel() {
  if (selectedJob) markJobDirty(selectedJob);
  selectedJob = null;
  if (logPoll) clearTimeout(logPoll);
  document.getElementById("log-panel").hidden = true;
  if (window.location.hash.startsWith("#job=")) history.replaceState(null, "", window.location.pathname);
  scheduleRender();
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
  // A final job's text is all there is, unless it is retried: then its state leaves FINAL and polling resumes.
  if (!FINAL.has(state)) logPoll = setTimeout(() => pollLogs(jobId, next), LOG_POLL_MS);
  else logPoll = setTimeout(() => resumeIfRetried(jobId), LOG_POLL_MS);
}

function resumeIfRetried(jobId) {
  const job = findJob(jobId);
  if (selectedJob !== jobId) return;
  if (job && !FINAL.has(job.state)) {
    document.getElementById("log-text").textContent = "";
    pollLogs(jobId, 0);
  } else {
    logPoll = setTimeout(() => resumeIfRetried(jobId), LOG_POLL_MS);
  }
}

function appendLog(text, skipped) {
  const box = document.getElementById("log-text");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  if (skipped) box.append(`… ${skipped} characters not shown …\n`);
  if (text) box.append(text);
  if (atBottom) box.scrollTop = box.scrollHeight;
}

function renderPanelFacts() {
  if (!selectedJob) return;
  const job = findJob(selectedJob);
  const cancel = document.getElementById("job-cancel"), retry = document.getElementById("job-retry");
  cancel.disabled = !job || FINAL.has(job.state);
  retry.disabled = !job || !RETRYABLE.has(job.state);
  if (!job) return;
  const facts = [job.state, job.dag && `DAG ${job.dag}`, job.worker && `on ${job.worker}`, job.attempt && `attempt ${job.attempt}`,
    job.exit_code !== null && job.exit_code !== undefined && `exit ${job.exit_code}`].filter(Boolean);
  const line = document.getElementById("log-facts");
  line.textContent = facts.join(" · ");
  line.dataset.state = job.state;
  const reason = document.getElementById("log-reason");
  reason.textContent = job.reason || "";
  reason.hidden = !job.reason;
}

// ------------------------------------------------------------------ actions

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

async function post(path, body, what, buttons) {
  buttons.forEach((button) => { button.disabled = true; });
  const response = await fetch(path, {
    method: "POST", headers: { "Content-Type": "application/json", "X-Titan-Token": actionToken() },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const answer = await response.json().catch(() => ({}));
    window.alert(`${what}: ${answer.error || response.statusText}`);
    buttons.forEach((button) => { button.disabled = false; });
    return null;
  }
  return response.json();
}

async function decide(gateId, verb, buttons) {
  let body = {};
  if (verb === "reject") {
    const reason = window.prompt(`Why reject ${gateId}?`, "");
    if (reason === null) return;
    body = { reason };
  }
  await post(`/api/gates/${encodeURIComponent(gateId)}/${verb}`, body, `${verb} ${gateId}`, buttons);
}

// Cancel or Retry a job ("jobs") or a DAG ("dags"). Cancelling asks first: it kills running work.
async function act(kind, name, verb, buttons) {
  const what = `${verb} ${kind === "dags" ? "DAG " : ""}${name}`;
  if (verb === "cancel" && !window.confirm(`Cancel ${kind === "dags" ? "DAG " : "job "}${name}? Running work is killed.`)) return;
  const answer = await post(`/api/${kind}/${encodeURIComponent(name)}/${verb}`, {}, what, buttons);
  if (answer && document.getElementById("jobs-view").hidden === false) loadJobTable();
}

function setUpPanelButtons() {
  const cancel = document.getElementById("job-cancel"), retry = document.getElementById("job-retry");
  cancel.addEventListener("click", () => act("jobs", selectedJob, "cancel", [cancel]));
  retry.addEventListener("click", () => act("jobs", selectedJob, "retry", [retry]));
}
window.addEventListener("DOMContentLoaded", setUpPanelButtons);
