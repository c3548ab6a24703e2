"use strict";
// The job table (the "Jobs" tab): search and filters (state, DAG, worker, time) sent to /api/jobs, pages
// by cursor (Older follows next_cursor; Newer goes back). It reloads while shown, as jobs change.

const TABLE_REFRESH_MS = 2000;
const table = { cursors: [null], page: 0, timer: null, loading: false };

function setUpJobTable() {
  const form = document.getElementById("job-filters");
  const state = form.elements.state;
  for (const name of STATE_ORDER) state.append(el("option", { value: name }, stateLabel(name)));
  form.addEventListener("input", () => { table.cursors = [null]; table.page = 0; loadJobTable(); });
  form.addEventListener("submit", (event) => { event.preventDefault(); loadJobTable(); });
  document.getElementById("jobs-older").addEventListener("click", () => { table.page += 1; loadJobTable(); });
  document.getElementById("jobs-newer").addEventListener("click", () => { table.page = Math.max(0, table.page - 1); loadJobTable(); });
}

function tableQuery() {
  const form = document.getElementById("job-filters").elements;
  const seconds = (value) => value ? String(new Date(value).getTime() / 1000) : "";
  const query = new URLSearchParams({ q: form.q.value, state: form.state.value, dag: form.dag.value,
    worker: form.worker.value, since: seconds(form.since.value), until: seconds(form.until.value) });
  const cursor = table.cursors[table.page];
  if (cursor) query.set("cursor", cursor);
  for (const [name, value] of [...query.entries()]) if (!value) query.delete(name);
  return query;
}

async function loadJobTable() {
  clearTimeout(table.timer);
  if (document.getElementById("jobs-view").hidden) return;
  const note = document.getElementById("jobs-note");
  try {
    const response = await fetch(`/api/jobs?${tableQuery()}`);
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    table.cursors[table.page + 1] = answer.next_cursor;
    renderJobRows(answer.jobs);
    note.textContent = answer.jobs.length ? `page ${table.page + 1}` : "No job matches.";
    document.getElementById("jobs-older").disabled = !answer.next_cursor;
    document.getElementById("jobs-newer").disabled = table.page === 0;
  } catch (error) {
    note.textContent = `jobs unavailable: ${error.message}`;
  }
  table.timer = setTimeout(loadJobTable, TABLE_REFRESH_MS);
}

function renderJobRows(jobs) {
  const body = document.getElementById("job-rows");
  body.replaceChildren(...jobs.map(jobRow));
}

function jobRow(job) {
  const cancel = el("button", { type: "button", "data-action": "cancel" }, "Cancel");
  const retry = el("button", { type: "button", "data-action": "retry" }, "Retry");
  cancel.disabled = FINAL.has(job.state);
  retry.disabled = !RETRYABLE.has(job.state);
  cancel.onclick = () => act("jobs", job.job_id, "cancel", [cancel]);
  retry.onclick = () => act("jobs", job.job_id, "retry", [retry]);
  return el("tr", { "data-job-id": job.job_id, "data-state": job.state },
    el("td", {}, el("a", { href: jobLink(job.job_id) }, job.job_id)),
    el("td", {}, job.dag ? el("a", { href: dagLink(job.dag) }, job.dag) : "—"),
    el("td", { class: "state-cell" }, stateLabel(job.state)),
    el("td", {}, job.worker || lastWorker(job) || "—"),
    el("td", { title: job.submitted_at ? new Date(job.submitted_at * 1000).toISOString() : "" }, clock(job.submitted_at)),
    el("td", { class: "number" }, duration(job.wait_seconds)),
    el("td", { class: "number" }, duration(job.run_seconds)),
    el("td", { class: "number" }, job.exit_code === null || job.exit_code === undefined ? "" : String(job.exit_code)),
    el("td", { class: "reason-cell" }, job.reason || ""),
    el("td", { class: "row-actions" }, cancel, retry));
}

function lastWorker(job) {
  const attempts = job.attempts || [];
  return attempts.length ? attempts[attempts.length - 1].worker : null;
}

function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "—";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  return seconds < 60 ? `${seconds.toFixed(seconds < 10 ? 2 : 1)} s` : `${Math.floor(seconds / 60)} m ${Math.round(seconds % 60)} s`;
}
