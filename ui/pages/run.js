// A run: its config, git commit and uncommitted diff, environment, summary and training curves (uPlot).
import { useEffect, useMemo, useState } from "preact/hooks";
import { useQuery, useLive, useReloadedWhen } from "../api.js";
import {
  html, href, Loaded, StateBadge, Time, RecordedOffline, artifactHref, Badge, bytes, JobId, useTitle,
} from "../html.js";
import { useViewer, may, entityScopes } from "../access.js";
import { Fact, Facts, KeyValues } from "../components/facts.js";
import { Pager, useCursorPages } from "../components/pager.js";
import { StepChart, lineOf } from "../components/step_chart.js";

const RUN = `query Run($entity: String!, $project: String!, $runId: String!) {
  run(entity: $entity, project: $project, runId: $runId) {
    entity project runId name jobType state exitCode config environment summary notes tags group
    startedAt startedBy finishedAt syncedAt startedOfflineAt finishedOfflineAt metricCount
    launchedBy { id queue state }
  }
}`;

// Asked by type: a run that logs has far more metric batches than changes on its stream.
const CHANGES = `query RunChanges($stream: String!, $actions: [String!]) {
  auditLog(stream: $stream, actions: $actions, first: 50) { items { eventId action actor occurredAt details } }
}`;

// What changed after the run started: config and summary keys set by the script, renames, alerts.
const SHOWN = {
  "runs.config_updated": "config",
  "runs.summary_updated": "summary",
  "runs.run_described": "described",
  "runs.alert_raised": "alert",
};

function Changes({ result }) {
  return html`<${Loaded} result=${result}>${({ auditLog }) => {
    const items = auditLog.items.filter((r) => SHOWN[r.action]);
    if (!items.length) return html`<p class="muted">No changes after the start, no alerts.</p>`;
    return html`<ul class="changes" data-testid="run-changes">${items.map((r) => html`<li key=${r.eventId}>
      <${Badge} kind=${r.action === "runs.alert_raised" ? "alert" : "alias"}>${SHOWN[r.action]}<//>
      ${r.action === "runs.alert_raised"
        ? html` <strong>${r.details.level} ${r.details.title}</strong> ${r.details.text}`
        : html` <code>${JSON.stringify(r.details.changes || { name: r.details.name, notes: r.details.notes, tags: r.details.tags, group: r.details.group })}</code>${r.details.removed?.length ? html` removed <code>${r.details.removed.join(", ")}</code>` : ""}`}
      <span class="muted"> by ${r.actor} <${Time} at=${r.occurredAt} /></span></li>`)}</ul>`;
  }}<//>`;
}

export const IO_SHOWN = 200; // of the versions a run used, and of those it logged: the rest are counted
const IO = `query RunIO($ref: String!) {
  lineage(ref: $ref, direction: BOTH, depth: 1, fanOut: ${IO_SHOWN}) {
    nodes { id depth artifactVersion { id name version type aliases } }
    edges { source target kind }
    hidden { node direction count }
  }
}`;

// What the run used and what it logged: its neighbours in the lineage graph.
function InputsOutputs({ entity, project, runId }) {
  const self = `run:${entity}/${project}/${runId}`;
  const result = useQuery(IO, { ref: self });
  return html`<${Loaded} result=${result}>${({ lineage }) => {
    const byId = new Map(lineage.nodes.map((n) => [n.id, n.artifactVersion]));
    const used = lineage.edges.filter((e) => e.target === self && e.kind === "USED").map((e) => byId.get(e.source));
    const logged = lineage.edges.filter((e) => e.source === self && e.kind === "PRODUCED").map((e) => byId.get(e.target));
    // Past IO_SHOWN, the walk counts the rest instead of listing them.
    const more = (direction) => lineage.hidden.filter((h) => h.node === self && h.direction === direction)
      .reduce((sum, h) => sum + h.count, 0);
    const list = (avs, hidden, field, testid) => html`${avs.filter(Boolean).length
      ? avs.filter(Boolean).map((av) => html`<li><a href=${artifactHref(av.id)}>${av.name}:${av.version}</a> <span class="muted">${av.type}</span>
          ${av.aliases.map((a) => html` <${Badge} kind="alias">${a}<//>`)}</li>`)
      : !hidden && html`<li class="muted">none</li>`}
      ${hidden > 0 && html`<li class="muted" data-testid=${testid}>and ${hidden.toLocaleString()} more
        (the API lists them all: <code>run { ${field} }</code>)</li>`}`;
    return html`<div class="columns" data-testid="run-io">
      <section><h3>Used</h3><ul>${list(used, more("UPSTREAM"), "usedArtifacts", "more-used")}</ul></section>
      <section><h3>Logged</h3><ul>${list(logged, more("DOWNSTREAM"), "loggedArtifacts", "more-logged")}</ul></section>
    </div>`;
  }}<//>`;
}

// The charts drawn at once: a run may log thousands of metrics (a layer's each), too many points for one answer and
// too many charts for one page. The rest are a search or a page away.
export const CHARTED = 24;

const METRIC_KEYS = `query RunMetricKeys(
  $entity: String!, $project: String!, $runId: String!, $search: String, $after: String
) {
  run(entity: $entity, project: $project, runId: $runId) {
    metricKeys(first: ${CHARTED}, search: $search, after: $after) { items endCursor hasNextPage }
  }
}`;

const CURVES = `query RunCurves($entity: String!, $project: String!, $runId: String!, $keys: [String!]) {
  run(entity: $entity, project: $project, runId: $runId) { history(keys: $keys, samples: 1000) { key steps values } }
}`;

// Each metric sampled by the server (history: at most 1,000 points a curve), however long the run.
// The charts are made once per answer: a re-render draws none again.
function CurvesOf({ run, keys, changed }) {
  const result = useQuery(CURVES, { ...run, keys });
  useReloadedWhen(result, changed);
  const charts = useMemo(
    () => (result.data?.run?.history || []).map((c) => [c.key, [lineOf(c.key, "#3b82f6", c.steps, c.values)]]),
    [result.data],
  );
  return html`<${Loaded} result=${result}>${() => html`<div class="curves">
    ${charts.map(([key, lines]) => html`<${StepChart} key=${key} name=${key} lines=${lines} testid=${"curve-" + key} />`)}
    </div>`}<//>`;
}

// The run's metrics, CHARTED at a time by name: with more than that, a search and pages choose which.
function Curves({ entity, project, runId, count, changed }) {
  const run = { entity, project, runId };
  const [typed, setTyped] = useState("");
  const [search, setSearch] = useState("");
  const pages = useCursorPages();
  useEffect(() => {
    if (typed.trim() === search) return undefined;
    const t = setTimeout(() => { setSearch(typed.trim()); pages.restart(); }, 250);
    return () => clearTimeout(t);
  }, [typed]);
  const result = useQuery(METRIC_KEYS, { ...run, search: search || null, after: pages.after });
  useReloadedWhen(result, changed);
  if (!count) return html`<p class="muted">No metrics logged.</p>`;
  const many = count > CHARTED;
  return html`<div data-testid="curves">
    ${many && html`<p class="muted" data-testid="curves-note">
      ${count.toLocaleString()} metrics: ${CHARTED} charted at a time, by name.
      <input type="search" placeholder="Search metrics" aria-label="Search metrics" value=${typed}
             onInput=${(e) => setTyped(e.target.value)} /></p>`}
    <${Loaded} result=${result}>${({ run: found }) => {
      const keys = found?.metricKeys;
      if (!keys) return null;
      return html`
        ${keys.items.length
          ? html`<${CurvesOf} key=${keys.items.join("\n")} run=${run} keys=${keys.items} changed=${changed} />`
          : html`<p class="muted">No metric matches.</p>`}
        ${many && html`<${Pager} pages=${pages} page=${keys} stale=${result.stale} testid="curves-page"
          total=${search ? undefined : [count, "metric", "metrics"]} />`}`;
    }}<//>
  </div>`;
}

function diffLine(line) {
  if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ")) return "file";
  if (line.startsWith("+")) return "add";
  if (line.startsWith("-")) return "del";
  return line.startsWith("@@") ? "hunk" : "";
}

function Git({ git }) {
  if (!git) return html`<p class="muted">Not recorded (the run did not start in a git checkout).</p>`;
  return html`
    <${Facts}>
      <${Fact} label="Remote">${git.remote || html`<span class="muted">none</span>`}<//>
      <${Fact} label="Branch">${git.branch}<//>
      <${Fact} label="Commit"><code data-testid="git-commit">${git.commit}</code><//>
    <//>
    <h3>Uncommitted diff</h3>
    ${git.diff ? html`<pre class="code diff" data-testid="git-diff">${git.diff.split("\n").map((line) => html`<span class=${diffLine(line)}>${line}\n</span>`)}</pre>` : git.diff_omitted_bytes
      ? html`<p class="muted">Not recorded: ${bytes(git.diff_omitted_bytes)} of uncommitted changes, more than a run records. This run cannot be cloned.</p>`
      : html`<p class="muted">None: the commit is the code.</p>`}`;
}

function Environment({ env }) {
  const { git, requirements, ...rest } = env || {};
  return html`
    <${KeyValues} value=${rest} empty="Not recorded." />
    ${requirements?.length > 0 && html`<details><summary>${requirements.length} installed packages</summary><pre class="code">${requirements.join("\n")}</pre></details>`}`;
}

export function RunPage({ entity, project, runId }) {
  const result = useQuery(RUN, { entity, project, runId });
  useTitle(result.data?.run?.name || runId, `${entity}/${project}`);
  const viewer = useViewer();
  const changes = useQuery(CHANGES, { stream: `run:${entity}/${project}/${runId}`, actions: Object.keys(SHOWN) });
  const [changed, setChanged] = useState(0);
  const live = useLive({ streamPrefix: `run:${entity}/${project}/${runId}` }, () => {
    result.reload();
    changes.reload();
    setChanged((n) => n + 1);
  });
  return html`<main class="pad"><${Loaded} result=${result}>${({ run }) => {
    if (!run) return html`<p class="muted">No run ${entity}/${project}/${runId}.</p>`;
    return html`
      <p class="crumbs"><a href=${href("runs")}>Runs</a> / <a href=${href("runs", run.entity, run.project)}>${run.entity}/${run.project}</a> / ${run.runId}</p>
      <header class="page-head">
        <h1>${run.name || run.runId}${run.name && run.name !== run.runId && html` <code class="muted run-id">${run.runId}</code>`} <${StateBadge} state=${run.state} /></h1>
        <p class="live muted" title="live updates over the events subscription">● ${live}</p>
        <p class="muted">${run.jobType && html`${run.jobType} · `}started by ${run.startedBy} <${Time} at=${run.startedAt} /><${RecordedOffline} at=${run.startedOfflineAt} />
          ${run.finishedAt && html` · finished <${Time} at=${run.finishedAt} /><${RecordedOffline} at=${run.finishedOfflineAt} />`}${run.exitCode != null && ` · exit ${run.exitCode}`}
          ${run.launchedBy && html` · launched by job <a href=${href("launch", "jobs", run.launchedBy.id)}><${JobId} id=${run.launchedBy.id} /></a> on ${run.launchedBy.queue}`}</p>
        ${(run.tags.length > 0 || run.group) && html`<p data-testid="run-tags">${run.group && html`group <strong>${run.group}</strong> `}${run.tags.map((t) => html` <${Badge} kind="tag">${t}<//>`)}</p>`}
        ${run.notes && html`<p class="notes" data-testid="run-notes">${run.notes}</p>`}
        ${may(viewer, "member", entityScopes(run.entity)) && !run.environment?.git?.diff_omitted_bytes && html`<a class="button" href=${href("launch", "clone", run.entity, run.project, run.runId)}>Clone this run…</a>`}
      </header>
      <section><h2>Artifacts</h2><${InputsOutputs} entity=${run.entity} project=${run.project} runId=${run.runId} /></section>
      <section><h2>Training curves</h2><${Curves} key=${`${run.entity}/${run.project}/${run.runId}`}
        entity=${run.entity} project=${run.project} runId=${run.runId} count=${run.metricCount} changed=${changed} /></section>
      <div class="columns">
        <section><h2>Config</h2><${KeyValues} value=${run.config} empty="No config." /></section>
        <section><h2>Summary</h2><${KeyValues} value=${run.summary} empty="No summary." /></section>
      </div>
      <section><h2>Changes and alerts</h2><${Changes} result=${changes} /></section>
      <section><h2>Code</h2><${Git} git=${run.environment?.git} /></section>
      <section><h2>Environment</h2><${Environment} env=${run.environment} /></section>`;
  }}<//></main>`;
}
