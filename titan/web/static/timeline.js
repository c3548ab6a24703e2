"use strict";
// A DAG's timeline (Gantt chart): one row per job, a bar per attempt from its start to its end (to now
// while it runs), the wait before the first attempt drawn faint. From /api/timeline, the same entries as
// the job table; refreshed (at most every TIMELINE_REFRESH_MS) while the DAG changes.

const TIMELINE = { row: 20, label: 170, width: 760, pad: 6, maxHeight: 420 };
const TIMELINE_REFRESH_MS = 1000;
const openTimelines = new Map();        // DAG name -> time of its last fetch
const timelineTimers = new Map();       // DAG name -> its one pending refresh

function toggleTimeline(name) {
  if (openTimelines.has(name)) {
    openTimelines.delete(name);
    document.querySelector(`.dag-card[data-dag="${CSS.escape(name)}"] .timeline`)?.remove();
  } else {
    openTimeline(name);
  }
}

function openTimeline(name) {
  openTimelines.set(name, 0);
  loadTimeline(name);
}

function refreshTimelines(names) {
  for (const name of names) {
    if (!openTimelines.has(name) || timelineTimers.has(name)) continue;
    const wait = Math.max(0, openTimelines.get(name) + TIMELINE_REFRESH_MS - Date.now());
    timelineTimers.set(name, setTimeout(() => { timelineTimers.delete(name); loadTimeline(name); }, wait));
  }
}

async function loadTimeline(name) {
  openTimelines.set(name, Date.now());
  const response = await fetch(`/api/timeline?dag=${encodeURIComponent(name)}`);
  const answer = await response.json().catch(() => ({}));
  const card = document.querySelector(`.dag-card[data-dag="${CSS.escape(name)}"]`);
  if (!card || !openTimelines.has(name)) return;
  const box = el("div", { class: "timeline", "data-dag": name });
  box.append(response.ok ? timelineSvg(answer.jobs) : el("p", { class: "empty" }, `timeline unavailable: ${answer.error}`));
  const old = card.querySelector(".timeline");
  if (old) { box.scrollTop = old.scrollTop; old.replaceWith(box); } else card.append(box);
}

function timelineSvg(jobs) {
  const now = Date.now() / 1000;
  const times = jobs.flatMap((job) => [job.submitted_at, ...job.attempts.flatMap((a) => [a.started_at, a.ended_at || now])])
    .filter((t) => t !== null && t !== undefined);
  if (!times.length) return el("p", { class: "empty" }, "No attempt seen yet (the dashboard times what it saw start).");
  const start = Math.min(...times), span = Math.max(1, Math.max(...times) - start);
  const x = (t) => TIMELINE.label + ((t - start) / span) * (TIMELINE.width - TIMELINE.label - TIMELINE.pad);
  const height = (jobs.length + 1) * TIMELINE.row + TIMELINE.pad;
  const svg = svgEl("svg", { viewBox: `0 0 ${TIMELINE.width} ${height}`, class: "gantt", role: "img",
    style: `width:100%;max-width:${TIMELINE.width}px` });
  svg.append(svgEl("text", { class: "axis", x: TIMELINE.label, y: 12 }, new Date(start * 1000).toLocaleTimeString()),
    svgEl("text", { class: "axis", x: TIMELINE.width - TIMELINE.pad, y: 12, "text-anchor": "end" }, `+${span.toFixed(1)} s`));
  jobs.forEach((job, i) => svg.append(timelineRow(job, TIMELINE.row * (i + 1), x, now)));
  return svg;
}

function timelineRow(job, y, x, now) {
  const row = svgEl("g", { class: "gantt-row", "data-job-id": job.job_id, "data-attempts": job.attempts.length },
    svgEl("text", { class: "gantt-label", x: 0, y: y + 13 }, clip(job.job_id, 24)));
  const first = job.attempts.length ? job.attempts[0].started_at : (FINAL.has(job.state) ? job.ended_at : now);
  if (job.submitted_at && first) {
    row.append(svgEl("rect", { class: "gantt-wait", x: x(job.submitted_at), y: y + 7, height: 4,
      width: Math.max(1, x(first) - x(job.submitted_at)) }));
  }
  job.attempts.forEach((attempt, i) => {
    const end = attempt.ended_at || now;
    const state = attempt.ended_at === null ? "RUNNING"
      : i === job.attempts.length - 1 && FINAL.has(job.state) ? job.state : "FAILED";
    row.append(svgEl("rect", { class: "gantt-bar", "data-state": state, "data-attempt": attempt.attempt,
      x: x(attempt.started_at), y: y + 3, height: TIMELINE.row - 8, rx: 2, width: Math.max(2, x(end) - x(attempt.started_at)) },
    svgEl("title", {}, `${job.job_id} attempt ${attempt.attempt} on ${attempt.worker || "?"}: ${(end - attempt.started_at).toFixed(2)} s`
      + (attempt.reason ? ` — ${attempt.reason}` : ""))));
  });
  row.addEventListener("click", () => { window.location.hash = jobLink(job.job_id); });
  return row;
}
