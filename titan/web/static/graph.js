"use strict";
// DAG cards: a header with the DAG's actions, a progress bar, the graph (laid out by depth) and, when
// asked for, its timeline. A column with more than GROUP_OVER jobs is drawn as one node per state
// ("280 running"), so a 300-job fan-out stays a few nodes tall; "Show all" draws every job, and the
// graph scrolls inside its card either way.

const NODE = { width: 176, height: 54, gapX: 56, gapY: 12, pad: 10 };
const GROUP_OVER = 12;
const MIN_SCALE = 0.7;
const expandedDags = new Set();       // DAGs whose every job is drawn, grouping or not

function renderDags(names) {
  const box = document.getElementById("dags");
  const placeholder = box.querySelector(".empty");
  for (const name of names) {
    const dag = model.dags.get(name);
    const old = box.querySelector(`.dag-card[data-dag="${CSS.escape(name)}"]`);
    if (!dag || !dag.jobs.size) { if (old) old.remove(); continue; }
    const card = dagCard(dag, old);
    if (old) old.replaceWith(card);
    else if (name === SINGLE_JOBS) box.append(card);
    else box.prepend(card);          // newest on top, jobs without a DAG at the bottom
  }
  const anyCard = box.querySelector(".dag-card");
  if (placeholder && anyCard) placeholder.remove();
}

function dagCard(dag, old) {
  const jobs = [...dag.jobs.values()];
  const counts = {};
  for (const job of jobs) counts[job.state] = (counts[job.state] || 0) + 1;
  const failed = (counts.FAILED || 0) + (counts.CANCELLED || 0) > 0;
  const progress = el("div", { class: "progress" });
  for (const state of STATE_ORDER) {
    if (counts[state]) progress.append(el("span", { "data-state": state, style: `flex:${counts[state]}` }));
  }
  const summary = STATE_ORDER.filter((s) => counts[s]).map((s) => `${counts[s]} ${stateLabel(s)}`).join(" · ");
  // The old card's graph box is kept (its SVG replaced), so a redraw keeps the reader's scroll position
  // without reading it: reading it would lay the page out once per card.
  const graph = old?.querySelector(".graph") || el("div", { class: "graph" });
  graph.replaceChildren(dagSvg(dag));
  const card = el("article", { class: "dag-card", "data-dag": dag.dag, "data-finished": String(dag.finished),
    "data-outcome": failed ? "failed" : "ok", "data-jobs": jobs.length },
  dagHead(dag, jobs.length, failed, summary), progress, graph);
  const timeline = old?.querySelector(".timeline");
  if (timeline) card.append(timeline);
  if (old?.classList.contains("linked")) card.classList.add("linked");
  return card;
}

function dagHead(dag, size, failed, summary) {
  const single = dag.dag === SINGLE_JOBS;
  const title = single ? "Jobs without a DAG" : dag.dag;
  const badge = single ? `${size} job${size === 1 ? "" : "s"}` : dag.finished ? (failed ? "finished with failures" : "finished") : "running";
  const head = el("div", { class: "dag-head" },
    el("h2", { class: "dag-name" }, single ? title : el("a", { href: dagLink(dag.dag), title: "link to this DAG" }, title)),
    el("span", { class: "dag-badge" }, badge), el("span", { class: "dag-summary" }, summary));
  const actions = el("div", { class: "dag-actions" });
  if (isGrouped(dag)) {
    actions.append(button(expandedDags.has(dag.dag) ? "Group" : `Show all ${size}`, "expand", () => toggleExpanded(dag.dag)));
  }
  if (!single) {
    actions.append(button("Timeline", "timeline", () => toggleTimeline(dag.dag)));
    const cancel = button("Cancel", "cancel", () => act("dags", dag.dag, "cancel", [cancel]));
    const retry = button("Retry", "retry", () => act("dags", dag.dag, "retry", [retry]));
    cancel.disabled = dag.finished;
    retry.disabled = ![...dag.jobs.values()].some((job) => RETRYABLE.has(job.state));
    actions.append(cancel, retry);
  }
  head.append(actions);
  return head;
}

function button(label, action, onclick) {
  const node = el("button", { type: "button", "data-action": action }, label);
  node.addEventListener("click", onclick);
  return node;
}

function toggleExpanded(name) {
  if (expandedDags.has(name)) expandedDags.delete(name); else expandedDags.add(name);
  dirty.dags.add(name);
  scheduleRender();
}

// ------------------------------------------------------------------ layout

function columnsOf(dag) {
  const jobs = dag.jobs;
  if (dag.dag === SINGLE_JOBS) {
    const columns = [];
    [...jobs.keys()].forEach((id, i) => { (columns[i % 4] ||= []).push(id); });
    return columns;
  }
  // Column = depth from the roots (longest path), so every edge points right.
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
  for (const id of jobs.keys()) (columns[depthOf(id)] ||= []).push(id);
  return columns;
}

function isGrouped(dag) {
  return columnsOf(dag).some((ids) => ids && ids.length > GROUP_OVER);
}

// Nodes: {key, job} for a job, {key, group: {state, ids}} for the jobs of one state in a big column.
function nodesOf(dag) {
  let columns = columnsOf(dag).map((ids) => ids || []);
  const grouping = !expandedDags.has(dag.dag);
  if (grouping && dag.dag === SINGLE_JOBS && columns.flat().length > 4 * GROUP_OVER) columns = [columns.flat()];
  const nodeOf = new Map();                      // job id -> the key of the node that shows it
  const nodeColumns = columns.map((ids, x) => {
    if (!grouping || ids.length <= GROUP_OVER) {
      return ids.map((id) => { nodeOf.set(id, id); return { key: id, job: dag.jobs.get(id) }; });
    }
    const byState = new Map();
    for (const id of ids) {
      const state = dag.jobs.get(id).state;
      if (!byState.has(state)) byState.set(state, []);
      byState.get(state).push(id);
    }
    return STATE_ORDER.filter((state) => byState.has(state)).map((state) => {
      const key = `group:${x}:${state}`;
      byState.get(state).forEach((id) => nodeOf.set(id, key));
      return { key, group: { state, ids: byState.get(state) } };
    });
  });
  return { nodeColumns, nodeOf };
}

function layout(dag) {
  const { nodeColumns, nodeOf } = nodesOf(dag);
  const parentsOf = (node) => node.job ? node.job.parents || [] : node.group.ids.flatMap((id) => dag.jobs.get(id).parents || []);
  const row = new Map();
  nodeColumns.forEach((nodes, x) => {
    const mean = (node) => { const rows = parentsOf(node).map((p) => row.get(nodeOf.get(p))).filter((r) => r !== undefined);
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0; };
    if (x > 0 && dag.dag !== SINGLE_JOBS) nodes.sort((a, b) => mean(a) - mean(b));
    nodes.forEach((node, y) => row.set(node.key, y));
  });
  const position = new Map();
  nodeColumns.forEach((nodes, x) => nodes.forEach((node, y) => position.set(node.key, {
    x: NODE.pad + x * (NODE.width + NODE.gapX), y: NODE.pad + y * (NODE.height + NODE.gapY) })));
  const rows = Math.max(1, ...nodeColumns.map((nodes) => nodes.length));
  const width = 2 * NODE.pad + nodeColumns.length * NODE.width + (nodeColumns.length - 1) * NODE.gapX;
  return { nodeColumns, nodeOf, position, parentsOf, width, height: 2 * NODE.pad + rows * NODE.height + (rows - 1) * NODE.gapY };
}

function dagSvg(dag) {
  const { nodeColumns, nodeOf, position, parentsOf, width, height } = layout(dag);
  // Wide DAGs shrink to the card down to MIN_SCALE, then scroll sideways; tall ones scroll in the card.
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `DAG ${dag.dag}`,
    style: `width:100%;max-width:${width}px;min-width:${Math.round(width * MIN_SCALE)}px` });
  const drawn = new Set();
  for (const node of nodeColumns.flat()) {
    for (const parent of parentsOf(node)) {
      const from = nodeOf.get(parent);
      const key = `${from}>${node.key}`;
      if (from === undefined || drawn.has(key)) continue;
      drawn.add(key);
      svg.append(edge(position.get(from), position.get(node.key), from, node.key));
    }
  }
  for (const node of nodeColumns.flat()) {
    svg.append(node.job ? jobNode(node.job, position.get(node.key)) : groupNode(dag, node, position.get(node.key)));
  }
  return svg;
}

function edge(from, to, parent, child) {
  const x1 = from.x + NODE.width, y1 = from.y + NODE.height / 2, x2 = to.x, y2 = to.y + NODE.height / 2;
  const bend = (x2 - x1) / 2;
  return svgEl("path", { class: "edge", "data-from": parent, "data-to": child,
    d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` });
}

function clip(text, length) {
  return text.length > length ? text.slice(0, length - 1) + "…" : text;
}

function jobNode(job, at) {
  const detail = job.state === "RUNNING" && job.worker ? `RUNNING · ${job.worker}` : job.state.replace("_", " ");
  // Why it failed, was cancelled or waits: on the node itself, in full in the tooltip and the panel.
  const why = job.reason && job.state !== "COMPLETED" && job.state !== "RUNNING" ? job.reason : "";
  const node = svgEl("g", { class: "job-node" + (job.job_id === selectedJob ? " selected" : ""), "data-job-id": job.job_id,
    "data-state": job.state, transform: `translate(${at.x},${at.y})`, tabindex: "0" },
  svgEl("title", {}, `${job.job_id}: ${job.state}${job.reason ? " — " + job.reason : ""}`),
  svgEl("rect", { width: NODE.width, height: NODE.height, rx: 7 }),
  svgEl("rect", { class: "band", width: 6, height: NODE.height - 2, x: 1, y: 1, rx: 3 }),
  svgEl("text", { class: "name", x: 16, y: 18 }, clip(job.job_id, 23)),
  svgEl("text", { class: "state", x: 16, y: 32 }, clip(detail, 28)));
  if (why) node.append(svgEl("text", { class: "reason", x: 16, y: 46 }, clip(why, 30)));
  node.addEventListener("click", () => { window.location.hash = jobLink(job.job_id); });
  node.addEventListener("keydown", (key) => { if (key.key === "Enter") window.location.hash = jobLink(job.job_id); });
  return node;
}

function groupNode(dag, node, at) {
  const { state, ids } = node.group;
  const group = svgEl("g", { class: "job-node group-node", "data-group": node.key, "data-state": state,
    "data-count": ids.length, transform: `translate(${at.x},${at.y})`, tabindex: "0" },
  svgEl("title", {}, `${ids.length} ${stateLabel(state)}: ${ids.slice(0, 20).join(", ")}${ids.length > 20 ? ", …" : ""} (click to show all)`),
  svgEl("rect", { width: NODE.width, height: NODE.height, rx: 7 }),
  svgEl("rect", { class: "band", width: 6, height: NODE.height - 2, x: 1, y: 1, rx: 3 }),
  svgEl("text", { class: "name", x: 16, y: 22 }, `${ids.length} ${stateLabel(state)}`),
  svgEl("text", { class: "state", x: 16, y: 40 }, clip(`${ids[0]} … ${ids[ids.length - 1]}`, 28)));
  group.addEventListener("click", () => toggleExpanded(dag.dag));
  return group;
}
