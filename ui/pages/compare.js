// Runs side by side (#/compare/<entity>/<project>?runs=a,b,c), as W&B's run comparer: their config and summary
// key by key, what differs marked (or alone shown), and each metric's curves of every run in one chart. Opened
// from a project's runs table, whose ticked runs it names; the address holds them, so a link shows the same.
import { useMemo, useState } from "preact/hooks";
import { useQuery } from "../api.js";
import { html, href, Loaded, StateBadge, runHref, useTitle, naturally } from "../html.js";
import { useKeptInAddress } from "../components/pager.js";
import { StepChart, lineOf } from "../components/step_chart.js";
import { CHARTED } from "./run.js";

export const MOST_COMPARED = 8; // a chart's colours stay apart, and one answer stays small
const COLOURS = ["#3b82f6", "#ef4444", "#10b981", "#f59e0b", "#8b5cf6", "#ec4899", "#14b8a6", "#6b7280"];

// One aliased field per run: a query of a run list by ids would page and sort them, where the address's order is
// the order asked for.
function runsQuery(count) {
  const variables = Array.from({ length: count }, (_, i) => `$r${i}: String!`).join(", ");
  const fields = Array.from({ length: count }, (_, i) => `r${i}: run(entity: $entity, project: $project, runId: $r${i}) {
    runId name jobType state config summary metricCount metricKeys(first: ${CHARTED}) { items } }`).join("\n");
  return `query CompareRuns($entity: String!, $project: String!, ${variables}) { ${fields} }`;
}

function historiesQuery(count) {
  const variables = Array.from({ length: count }, (_, i) => `$r${i}: String!`).join(", ");
  const fields = Array.from({ length: count }, (_, i) => `h${i}: run(entity: $entity, project: $project, runId: $r${i}) {
    history(keys: $keys, samples: 1000) { key steps values } }`).join("\n");
  return `query CompareCurves($entity: String!, $project: String!, $keys: [String!], ${variables}) { ${fields} }`;
}

const numbered = (ids) => Object.fromEntries(ids.map((id, i) => [`r${i}`, id]));

// Nested values one key each, named by their path (`optimizer.lr`), as W&B's comparer lists them; a logged
// image's or table's summary (an object with a `_type`) stays one value.
function flat(value, prefix = "", into = new Map()) {
  for (const [key, v] of Object.entries(value || {})) {
    if (v && typeof v === "object" && !Array.isArray(v) && !("_type" in v)) flat(v, `${prefix}${key}.`, into);
    else if (v !== null && v !== undefined) into.set(`${prefix}${key}`, v);
  }
  return into;
}

// A number rounded to 6 digits, its whole value on hover: two values marked as differing may round alike.
function shownValue(v) {
  if (v === undefined) return html`<span class="muted">—</span>`;
  if (typeof v === "number") {
    return Number.isInteger(v) ? String(v) : html`<span title=${String(v)}>${String(+v.toPrecision(6))}</span>`;
  }
  return typeof v === "object" ? html`<code>${JSON.stringify(v)}</code>` : String(v);
}

// Keys by name, each with every run's value and whether they differ (a key one run lacks differs).
function rowsOf(runs, field) {
  const values = runs.map((run) => flat(run?.[field]));
  const keys = naturally(new Set(values.flatMap((v) => [...v.keys()])));
  return keys.map((key) => {
    const each = values.map((v) => v.get(key));
    return { key, each, differs: new Set(each.map((v) => JSON.stringify(v))).size > 1 };
  });
}

// Run names need not be unique (two runs started at once may be given one): a column says its run's id and colour.
function KeyTable({ runs, field, only, testid }) {
  const every = rowsOf(runs, field);
  const rows = every.filter((r) => !only || r.differs);
  if (!every.length) return html`<p class="muted">None of these runs has a ${field}.</p>`;
  if (!rows.length) return html`<p class="muted" data-testid=${testid}>The runs' ${field} is the same (${every.length} keys).</p>`;
  return html`<table class="grid compare" data-testid=${testid}>
    <thead><tr><th>Key</th>${runs.map((run) => html`<th key=${run.runId}><${Swatch} colour=${run.colour} />${run.name || run.runId}
      ${run.name && run.name !== run.runId && html` <code class="muted">${run.runId}</code>`}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr key=${r.key} class=${r.differs ? "differs" : ""} data-differs=${r.differs}>
      <th>${r.key}</th>${r.each.map((v, i) => html`<td key=${i}>${shownValue(v)}</td>`)}</tr>`)}</tbody>
  </table>`;
}

function Curves({ entity, project, runs }) {
  const logged = naturally(new Set(runs.flatMap((run) => run.metricKeys.items)));
  if (!logged.length) return html`<p class="muted">None of these runs logged metrics.</p>`;
  const more = runs.some((run) => run.metricCount > CHARTED) || logged.length > CHARTED;
  return html`${more && html`<p class="muted">The first ${CHARTED} metrics by name; a run's page charts the rest.</p>`}
    <${CurvesOf} entity=${entity} project=${project} runs=${runs} keys=${logged.slice(0, CHARTED)} />`;
}

// The charts are made once per answer: a re-render (the "only what differs" box ticked) keeps them, and their zoom.
function CurvesOf({ entity, project, runs, keys }) {
  const result = useQuery(historiesQuery(runs.length), { entity, project, keys, ...numbered(runs.map((r) => r.runId)) });
  const charts = useMemo(() => result.data && chartsOf(result.data, runs, keys), [result.data]);
  return html`<${Loaded} result=${result}>${() => html`<div class="curves">${charts.filter((c) => c.lines.length)
    .map((c) => html`<${StepChart} key=${c.key} name=${c.key} lines=${c.lines} testid=${"compared-" + c.key} />`)}</div>`}<//>`;
}

function chartsOf(answer, runs, keys) {
  return keys.map((key) => ({
      key,
      lines: runs.flatMap((run, i) => {
        const curve = answer[`h${i}`]?.history.find((c) => c.key === key);
      return curve ? [lineOf(run.name || run.runId, run.colour, curve.steps, curve.values)] : [];
    }),
  }));
}

const Swatch = ({ colour }) => html`<span class="swatch" style=${`background: ${colour}`}></span>`;

// The run ids an address names (`a,b,c`), each once.
export function parsedRuns(text) {
  return [...new Set((text || "").split(",").map((id) => id.trim()).filter(Boolean))];
}

export function compareHref(entity, project, ids) {
  return `${href("compare", entity, project)}?${new URLSearchParams({ runs: ids.join(",") })}`;
}

export function ComparePage({ entity, project, params }) {
  const named = parsedRuns(params.get("runs"));
  const ids = named.slice(0, MOST_COMPARED);
  const [only, setOnly] = useState(params.get("diff") === "1");
  useKeptInAddress(href("compare", entity, project), { runs: ids.join(","), diff: only ? "1" : "" });
  useTitle("Compare runs", `${entity}/${project}`);
  return html`<main class="pad">
    <p class="crumbs"><a href=${href("runs")}>Runs</a> / <a href=${`${href("runs", entity, project)}?${new URLSearchParams({ compare: ids.join(",") })}`}>${entity}/${project}</a> / compare</p>
    <h1>Compare runs</h1>
    ${named.length > ids.length && html`<p class="muted" data-testid="compare-cut">
      The first ${MOST_COMPARED} of the ${named.length} runs named: a chart's colours stay apart up to ${MOST_COMPARED}.</p>`}
    ${ids.length < 2
      ? html`<p class="muted">
          Tick two runs or more in <a href=${href("runs", entity, project)}>the project's runs</a> to compare them.</p>`
      : html`<${Compared} entity=${entity} project=${project} ids=${ids} only=${only} setOnly=${setOnly} />`}
  </main>`;
}

function Compared({ entity, project, ids, only, setOnly }) {
  const result = useQuery(runsQuery(ids.length), { entity, project, ...numbered(ids) });
  return html`<${Loaded} result=${result}>${(answer) => {
    // A run keeps its colour (its place in the address) in every chart, whichever others are missing.
    const runs = ids.map((_, i) => answer[`r${i}`] && { ...answer[`r${i}`], colour: COLOURS[i] });
    const found = runs.filter(Boolean);
    return html`
      <ul class="compared" data-testid="compared-runs">${ids.map((id, i) => html`<li key=${id}>
        <${Swatch} colour=${COLOURS[i]} />
        ${runs[i]
          ? html`<a href=${runHref(entity, project, id)}>${runs[i].name || id}</a> <code class="muted">${id}</code>
              ${runs[i].jobType && html` <span class="muted">${runs[i].jobType}</span>`} <${StateBadge} state=${runs[i].state} />`
          : html`<span class="muted">no run ${id} in ${entity}/${project} that you may read</span>`}</li>`)}</ul>
      ${found.length < 2
        ? html`<p class="muted" data-testid="compare-alone">${found.length ? "Only one of the runs named is here: nothing to compare it with." : "None of the runs named is here."}</p>`
        : html`<label class="toggle"><input type="checkbox" checked=${only} onChange=${(e) => setOnly(e.target.checked)} />
          Only what differs</label>`}
      <section><h2>Config</h2><${KeyTable} runs=${found} field="config" only=${only && found.length > 1} testid="compare-config" /></section>
      <section><h2>Summary</h2><${KeyTable} runs=${found} field="summary" only=${only && found.length > 1} testid="compare-summary" /></section>
      <section><h2>Training curves</h2>${found.length
        ? html`<${Curves} key=${found.map((r) => r.runId).join(",")} entity=${entity} project=${project} runs=${found} />`
        : html`<p class="muted">No run to chart.</p>`}</section>`;
  }}<//>`;
}
