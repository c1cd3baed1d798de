// Runs: the projects that have runs (#/runs), and a project's runs (#/runs/<entity>/<project>), newest first,
// searched and filtered by state, job type and tag, a page at a time; each opens the run page.
import { useEffect, useState } from "preact/hooks";
import { useQuery, useLive } from "../api.js";
import { html, href, Loaded, StateBadge, Badge, Time, runHref, JobId, useTitle } from "../html.js";
import { Pager, useCursorPages, useKeptInAddress } from "../components/pager.js";
import { MOST_COMPARED, parsedRuns, compareHref } from "./compare.js";

// A literal page size: the cost limit counts a page by its `first` (graphql/cost.py).
const PROJECTS = `query Projects($after: String) {
  projects(first: 100, after: $after) { items { entity project runCount lastActivityAt } endCursor hasNextPage }
}`;

const PROJECT = `query Project($entity: String!, $project: String!) {
  project(entity: $entity, project: $project) { runCount lastActivityAt jobTypes }
}`;

const RUNS = `query Runs($entity: String!, $project: String!, $search: String, $state: RunState, $jobType: String, $filters: GenericScalar, $first: Int!, $after: String) {
  runs(entity: $entity, project: $project, search: $search, state: $state, jobType: $jobType, filters: $filters, first: $first, after: $after) {
    items { entity project runId name jobType state tags startedBy startedAt finishedAt summary launchedBy { id queue } }
    endCursor hasNextPage totalCount
  }
}`;

export const PAGE_SIZE = 20;
const STATES = ["running", "finished", "failed", "crashed"];
const RUN_EVENTS = ["runs.run_started", "runs.run_finished", "runs.offline_run_synced"];

export function Projects() {
  useTitle("Runs");
  const pages = useCursorPages();
  const result = useQuery(PROJECTS, { after: pages.after });
  const live = useLive({ streamPrefix: "run:", types: RUN_EVENTS }, result.reload);
  return html`<main class="pad"><h1>Runs</h1>
    <p class="muted">Every project with runs, the most recently active first.</p>
    <${Loaded} result=${result}>${({ projects: page }) => { const projects = page.items; return html`
      <table class="grid" data-testid="projects">
        <thead><tr><th>Project</th><th>Runs</th><th>Last activity</th></tr></thead>
        <tbody>${projects.map((p) => html`<tr>
          <td><a href=${href("runs", p.entity, p.project)}>${p.entity}/${p.project}</a></td>
          <td>${p.runCount.toLocaleString()}</td>
          <td><${Time} at=${p.lastActivityAt} /></td>
        </tr>`)}</tbody>
      </table>
      ${!projects.length && html`<p class="muted">No run yet: runs appear here once training code calls <code>modelreg.init()</code>.</p>`}
      ${(pages.number > 1 || page.hasNextPage) && html`<${Pager} pages=${pages} page=${page} stale=${result.stale} />`}`; }}<//>
    <p class="live muted" title="live updates over the events subscription">● ${live}</p>
  </main>`;
}

// A run's numeric summary values by column name. What define_metric keeps is one level down, as W&B stores it
// (`{"acc": {"max": 0.93}}`), and shown as W&B's runs table names it: `acc.max`.
function summaryColumns(summary) {
  const columns = new Map();
  for (const [key, value] of Object.entries(summary || {})) {
    if (typeof value === "number") columns.set(key, value);
    // (A logged image's or histogram's summary is an object too, with a `_type`: its width is no metric.)
    else if (value && typeof value === "object" && !Array.isArray(value) && !("_type" in value)) {
      for (const [kept, v] of Object.entries(value)) if (typeof v === "number") columns.set(`${key}.${kept}`, v);
    }
  }
  return columns;
}

// The numeric summary columns most runs of the page have (the two shown).
function summaryKeys(runs, count = 2) {
  const seen = new Map();
  for (const run of runs) for (const key of summaryColumns(run.summary).keys()) seen.set(key, (seen.get(key) || 0) + 1);
  return [...seen].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, count).map(([key]) => key);
}

const number = (v) => (typeof v !== "number" ? "" : Number.isInteger(v) ? String(v) : String(+v.toPrecision(4)));

// `change(patch)` applies a patch to the filters as they are then (the search waits for typing to stop).
function Filters({ filters, jobTypes, change }) {
  const [typed, setTyped] = useState(filters.search);
  useEffect(() => {
    const t = setTimeout(() => typed !== filters.search && change({ search: typed }), 250);
    return () => clearTimeout(t);
  }, [typed]);
  const set = (key) => (e) => change({ [key]: e.target.value });
  // A tag is taken as typed once Enter or leaving the field says it is whole (a tag matches whole, not in part).
  const setTag = (e) => e.target.value.trim() !== filters.tag && change({ tag: e.target.value.trim() });
  return html`<form class="toolbar" onSubmit=${(e) => e.preventDefault()} data-testid="run-filters">
    <input type="search" placeholder="Search run id, name, job type" aria-label="Search runs" value=${typed}
           onInput=${(e) => setTyped(e.target.value)} />
    <label class="toggle">State <select value=${filters.state} onChange=${set("state")}>
      <option value="">any</option>${STATES.map((s) => html`<option value=${s}>${s}</option>`)}
    </select></label>
    <label class="toggle">Job type <select value=${filters.jobType} onChange=${set("jobType")}>
      <option value="">any</option>${jobTypes.map((t) => html`<option value=${t}>${t}</option>`)}
    </select></label>
    <label class="toggle">Tag <input type="search" placeholder="any" aria-label="Runs with tag" value=${filters.tag}
      size="12" onChange=${setTag} onKeyDown=${(e) => e.key === "Enter" && setTag(e)} /></label>
  </form>`;
}

function RunsTable({ runs, onTag, picked, onPick }) {
  const keys = summaryKeys(runs);
  return html`<table class="grid" data-testid="runs">
    <thead><tr><th><span class="visually-hidden">Compare</span></th><th>Run</th><th>Job type</th><th>State</th><th>Tags</th><th>Started by</th><th>Started</th><th>Finished</th>
      ${keys.map((k) => html`<th>${k}</th>`)}<th>Launched by</th></tr></thead>
    <tbody>${runs.map((r) => html`<tr>
      <td><input type="checkbox" aria-label=${`compare ${r.runId}`} checked=${picked.includes(r.runId)}
        disabled=${!picked.includes(r.runId) && picked.length >= MOST_COMPARED} onChange=${() => onPick(r.runId)} /></td>
      <td><a href=${runHref(r.entity, r.project, r.runId)}>${r.name || r.runId}</a>${r.name && html`<br /><code class="muted">${r.runId}</code>`}</td>
      <td>${r.jobType || html`<span class="muted">—</span>`}</td>
      <td><${StateBadge} state=${r.state} /></td>
      <td data-testid="run-tags">${r.tags.map((t) => html`<button type="button" class="link small" title=${`only runs tagged ${t}`}
        onClick=${() => onTag(t)}><${Badge} kind="tag">${t}<//></button>`)}</td>
      <td>${r.startedBy}</td>
      <td><${Time} at=${r.startedAt} /></td>
      <td><${Time} at=${r.finishedAt} /></td>
      ${keys.map((k) => html`<td>${number(summaryColumns(r.summary).get(k))}</td>`)}
      <td>${r.launchedBy ? html`<a href=${href("launch", "jobs", r.launchedBy.id)}>job <${JobId} id=${r.launchedBy.id} /></a> <span class="muted">${r.launchedBy.queue}</span>` : ""}</td>
    </tr>`)}</tbody>
  </table>`;
}

// A state the address names that runs do not have (a hand-edited link) is read as "any", as the jobs list does:
// sent as it is, it was answered with GraphQL's enum error in place of the runs.
function knownState(asked) {
  return STATES.includes(asked) ? asked : "";
}

// Keyed by project and address in app.js: what its address carries (`?search=…&state=…&jobType=…&tag=…&after=…`) is
// what it shows first, and what it shows is kept there, so that Back from a run, a reload or a link finds it again.
export function ProjectRuns({ entity, project, params = new URLSearchParams() }) {
  const [filters, setFilters] = useState(() => ({
    search: params.get("search") || "", state: knownState(params.get("state")), jobType: params.get("jobType") || "",
    tag: params.get("tag") || "",
  }));
  const pages = useCursorPages(params.getAll("after"));
  const change = (patch) => { setFilters((before) => ({ ...before, ...patch })); pages.restart(); };
  // Ticked to compare, kept across pages and filters (and in the address, for Back from the comparison).
  const [picked, setPicked] = useState(() => parsedRuns(params.get("compare")).slice(0, MOST_COMPARED));
  const pick = (runId) => setPicked((before) => (before.includes(runId) ? before.filter((id) => id !== runId) : [...before, runId]));
  useKeptInAddress(href("runs", entity, project), { ...filters, compare: picked.join(",") }, pages);
  useTitle("Runs", `${entity}/${project}`);
  const info = useQuery(PROJECT, { entity, project });
  const result = useQuery(RUNS, {
    entity, project, first: PAGE_SIZE, after: pages.after,
    search: filters.search || null, state: filters.state ? filters.state.toUpperCase() : null, jobType: filters.jobType || null,
    filters: filters.tag ? { tags: { $in: [filters.tag] } } : null,
  });
  const live = useLive({ streamPrefix: `run:${entity}/${project}/`, types: RUN_EVENTS }, () => { info.reload(); result.reload(); });
  const about = info.data?.project;
  return html`<main class="pad">
    <p class="crumbs"><a href=${href("runs")}>Runs</a> / ${entity}</p>
    <header class="page-head">
      <h1>${entity}/${project}</h1>
      ${about && html`<p class="muted">${about.runCount.toLocaleString()} runs · last activity <${Time} at=${about.lastActivityAt} /></p>`}
    </header>
    <${Filters} filters=${filters} jobTypes=${about?.jobTypes || []} change=${change} />
    ${picked.length > 0 && html`<p class="toolbar" data-testid="compare-bar">
      ${picked.length > 1
        ? html`<a class="button" href=${compareHref(entity, project, picked)}>Compare ${picked.length} runs</a>`
        : html`<span class="muted">Tick another run to compare it with ${picked[0]}.</span>`}
      ${picked.length >= MOST_COMPARED && html` <span class="muted">${MOST_COMPARED} at most.</span>`}
      <button type="button" class="link small" onClick=${() => setPicked([])}>clear</button></p>`}
    <${Loaded} result=${result}>${({ runs }) => html`
      <${RunsTable} runs=${runs.items} onTag=${(tag) => change({ tag })} picked=${picked} onPick=${pick} />
      ${!runs.items.length && html`<p class="muted">${filters.search || filters.state || filters.jobType || filters.tag ? "No run matches." : `No run in ${entity}/${project}.`}</p>`}
      <${Pager} pages=${pages} page=${runs} stale=${result.stale} total=${[runs.totalCount, "run", "runs"]}
        testid="runs-page" />`}<//>
    <p class="live muted" title="live updates over the events subscription">● ${live}</p>
  </main>`;
}
