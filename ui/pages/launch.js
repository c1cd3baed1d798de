// Launch: queues, jobs with their state, a job's captured output, and "clone this run" (enqueueJob fromRun).
import { useEffect, useState } from "preact/hooks";
import { gql, useQuery, useLive, useReloadedWhen } from "../api.js";
import { html, href, shown, Loaded, StateBadge, Time, ErrorBox, runHref, JobId, useTitle } from "../html.js";
import { KeyValues } from "../components/facts.js";
import { useViewer, may, mayAnywhere } from "../access.js";
import { Pager, useCursorPages, useKeptInAddress } from "../components/pager.js";

// The first 100 queues, each with how many of its jobs wait or run (counted by the server, whatever jobs are listed).
const QUEUES = `query LaunchQueues {
  launchQueues(first: 100) { items { name resource entities takesEveryEntity createdBy createdAt activeJobs } }
}`;

export const JOBS_PAGE = 50;
// Jobs newest first (waiting ones in the order agents take them), a page at a time.
const JOBS = `query LaunchJobs($state: JobState, $after: String) {
  launchJobs(state: $state, first: ${JOBS_PAGE}, after: $after) {
    items { id queue entity project state priority enqueuedAt enqueuedBy finishedAt exitCode runIds triggeredBy }
    endCursor hasNextPage
  }
}`;

// With why each earlier attempt was given up: the job's own reason is its last attempt's.
const JOB = `query Job($id: ID!, $stream: String!) {
  launchJob(id: $id) {
    id queue entity project state priority timeLimitS retryOf source config overrides triggeredBy attempt requeues agentId exitCode reason
    runIds enqueuedAt enqueuedBy startedAt finishedAt detail
    output(first: 500) { items { attempt stream text capturedAt } hasNextPage }
  }
  requeued: auditLog(stream: $stream, action: "launch.job_requeued", first: 50) { items { occurredAt details } }
}`;

// The output of each attempt apart, under its number, once there was more than one.
function Output({ items }) {
  const several = new Set(items.map((o) => o.attempt)).size > 1;
  return html`<pre class="code output" data-testid="job-output">${items.map((o, i) => html`${several && (i === 0 || items[i - 1].attempt !== o.attempt)
    && html`<span class="muted attempt-mark">── attempt ${o.attempt} ──${"\n"}</span>`}<span class=${shown(o.stream)}>${o.text}</span>`)}</pre>`;
}

const DELETE_QUEUE = `mutation DeleteQueue($input: DeleteLaunchQueueInput!) { deleteLaunchQueue(input: $input) { name } }`;
const ENQUEUE = `mutation Clone($input: EnqueueJobInput!) { enqueueJob(input: $input) { id state } }`;

const RETRY = `mutation Retry($id: ID!) { retryJob(input: { id: $id }) { id } }`;
const CANCEL = `mutation Cancel($id: ID!) { cancelJob(input: { id: $id, reason: "cancelled from the web UI" }) { id state } }`;

const ACTIVE = ["QUEUED", "CLAIMED", "RUNNING"];
const JOB_STATES = [...ACTIVE, "FINISHED", "FAILED", "CANCELLED"];

const LAUNCH_EVENTS = { types: ["launch.job_enqueued", "launch.job_claimed", "launch.job_started", "launch.job_finished", "launch.job_cancelled", "launch.job_requeued", "launch.job_output_captured", "launch.queue_created", "launch.queue_entities_set", "launch.queue_deleted"] };

// "lr=0.01" lines (values parsed as JSON where they are JSON) or a JSON object.
export function parseOverrides(text) {
  const t = text.trim();
  if (!t) return {};
  if (t.startsWith("{")) return JSON.parse(t);
  const out = {};
  for (const line of t.split(/\n|\s+(?=[\w.-]+=)/)) {
    if (!line.trim()) continue;
    const [k, ...v] = line.split("=");
    if (!v.length) throw new Error(`"${line}" is not key=value`);
    const raw = v.join("=").trim();
    try { out[k.trim()] = JSON.parse(raw); } catch { out[k.trim()] = raw; }
  }
  return out;
}

const RUN_CONFIG = `query RunConfig($entity: String!, $project: String!, $runId: String!) {
  run(entity: $entity, project: $project, runId: $runId) { config }
}`;

// The knobs a user changed: each config value edited in the form, parsed as JSON where it is JSON.
export function changedKnobs(config, edited) {
  const out = {};
  for (const [key, text] of Object.entries(edited)) {
    let value;
    try { value = JSON.parse(text); } catch { value = text; }
    if (JSON.stringify(value) !== JSON.stringify(config[key])) out[key] = value;
  }
  return out;
}

// 90 -> "90 s", 5400 -> "1.5 h": how long a job may run, as a person sets it.
const duration = (s) => (s < 120 ? `${s} s` : s < 7200 ? `${+(s / 60).toFixed(1)} min` : `${+(s / 3600).toFixed(1)} h`);

// Which agent runs (or ran) the current attempt, and for how long: where to look for its process, and whether it
// is stuck or merely long.
function Timing({ job }) {
  if (!job.agentId && !job.startedAt) return "";
  const took = job.startedAt && job.finishedAt
    ? duration(Math.max(0, Math.round((Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000)))
    : null;
  return html`<p class="muted" data-testid="job-timing">${job.agentId && html`agent <code>${job.agentId}</code>`}
    ${job.startedAt && html` · started <${Time} at=${job.startedAt} />`}${job.finishedAt && html` · ended <${Time} at=${job.finishedAt} />`}${took != null && ` · took ${took}`}</p>`;
}

// A queue may take only some entities' jobs (their jobs share its agents' machines).
const takes = (queue, entity) => queue.takesEveryEntity || !entity || queue.entities.includes(entity);

function CloneForm({ queues: all, fromRun, onDone }) {
  const [entity, project, runId] = fromRun || ["", "", ""];
  const queues = all.filter((q) => takes(q, entity));
  const [form, setForm] = useState({ queue: queues[0]?.name || "", entity, project, runId, overrides: "", priority: 0, timeLimit: "" });
  const [knobs, setKnobs] = useState({});
  const [config, setConfig] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  useEffect(() => {
    // The run's config, one field per knob (the demo's "no YAML" clone).
    if (!form.entity || !form.project || !form.runId) return;
    gql(RUN_CONFIG, { entity: form.entity, project: form.project, runId: form.runId })
      .then(({ run }) => {
        setConfig(run ? run.config : null);
        setKnobs(run ? Object.fromEntries(Object.entries(run.config).map(([k, v]) => [k, JSON.stringify(v)])) : {});
      })
      .catch(setError);
  }, [form.entity, form.project, form.runId]);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const overrides = { ...changedKnobs(config || {}, knobs), ...parseOverrides(form.overrides) };
      const { enqueueJob } = await gql(ENQUEUE, { input: {
        queue: form.queue, entity: form.entity, project: form.project, fromRun: form.runId,
        overrides, priority: Number(form.priority) || 0,
        timeLimitS: form.timeLimit ? Math.round(Number(form.timeLimit) * 3600) : null,
      } });
      onDone(enqueueJob.id);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const knobFields = config && Object.keys(knobs).length > 0 && html`
    <fieldset data-testid="knobs"><legend>Config of ${form.runId} (change what the new run should use)</legend>
      ${Object.entries(knobs).map(([k, v]) => html`
        <label>${k} <input name=${k} value=${v} onInput=${(e) => setKnobs({ ...knobs, [k]: e.target.value })} /></label>`)}
    </fieldset>`;
  return html`
    <form class="stack" onSubmit=${submit} data-testid="clone-form">
      <h2>Clone a run</h2>
      <p class="muted">Runs a finished run's code again (its commit and uncommitted diff, its command) with its config, changed by the overrides.</p>
      <label>Queue <select value=${form.queue} onChange=${set("queue")} required>${queues.map((q) => html`<option value=${q.name}>${q.name} (${shown(q.resource)})</option>`)}</select></label>
      <label>Entity <input value=${form.entity} onInput=${set("entity")} required /></label>
      <label>Project <input value=${form.project} onInput=${set("project")} required /></label>
      <label>Run id <input value=${form.runId} onInput=${set("runId")} required /></label>
      ${knobFields}
      <label>More overrides <textarea rows="2" placeholder="new_knob=3" value=${form.overrides} onInput=${set("overrides")}></textarea></label>
      <label>Priority <input type="number" value=${form.priority} onInput=${set("priority")} /></label>
      <label>Time limit, hours <input type="number" min="0.001" step="any" placeholder="none" value=${form.timeLimit} onInput=${set("timeLimit")} /></label>
      <button type="submit" disabled=${busy || !queues.length}>Enqueue</button>
      ${!queues.length && html`<p class="muted">No queue takes ${entity || "this entity"}'s jobs: an admin creates one or adds it to one (createLaunchQueue, setLaunchQueueEntities).</p>`}
      ${error && html`<${ErrorBox} error=${error} />`}
    </form>`;
}

function JobDetail({ id }) {
  const result = useQuery(JOB, { id, stream: `job:${id}` });
  const [error, setError] = useState(null);
  const cancels = may(useViewer(), "member", []);
  useLive(LAUNCH_EVENTS, result.reload);
  const cancel = async () => {
    setError(null);
    try { await gql(CANCEL, { id }); result.reload(); } catch (err) { setError(err); }
  };
  const retry = async () => {
    setError(null);
    try {
      const { retryJob } = await gql(RETRY, { id });
      location.hash = href("launch", "jobs", retryJob.id).slice(1);
    } catch (err) { setError(err); }
  };
  return html`<${Loaded} result=${result}>${({ launchJob: job, requeued }) => {
    if (!job) return html`<p class="muted">No job ${id}.</p>`;
    return html`
      <p class="crumbs"><a href="#/launch">Launch</a> / job</p>
      <h1>Job <${JobId} id=${job.id} /> <${StateBadge} state=${job.state} testid="job-state" />
        ${cancels && ACTIVE.includes(job.state) && html` <button onClick=${cancel}>Cancel job</button>`}
        ${cancels && !ACTIVE.includes(job.state) && html` <button onClick=${retry}>Run again</button>`}</h1>
      ${error && html`<${ErrorBox} error=${error} />`}
      <p class="muted">on ${job.queue} · enqueued by ${job.enqueuedBy} <${Time} at=${job.enqueuedAt} /> · attempt ${job.attempt}${job.requeues ? `, requeued ${job.requeues}×` : ""}${job.timeLimitS != null ? ` · time limit ${duration(job.timeLimitS)}` : ""}
        ${job.exitCode != null && ` · exit ${job.exitCode}`}${job.reason && ` · ${job.reason}`}</p>
      <${Timing} job=${job} />
      ${requeued.items.length > 0 && html`<section data-testid="requeues"><h2>Earlier attempts</h2><ul>
        ${[...requeued.items].reverse().map((r) => html`<li>attempt ${r.details.attempt} given up <${Time} at=${r.occurredAt} />: ${r.details.reason}</li>`)}
      </ul></section>`}
      ${job.retryOf && html`<p>Runs job <a href=${href("launch", "jobs", job.retryOf)}><${JobId} id=${job.retryOf} /></a> again.</p>`}
      ${job.runIds.length > 0 && html`<p>Runs: ${job.runIds.map((r) => html`<a href=${runHref(job.entity, job.project, r)}>${r}</a> `)}</p>`}
      <div class="columns">
        <section><h2>Overrides</h2><${KeyValues} value=${job.overrides} /></section>
        <section><h2>Config</h2><${KeyValues} value=${job.config} /></section>
      </div>
      <section><h2>Source</h2><${KeyValues} value=${job.source} /></section>
      ${job.triggeredBy && html`<section><h2>Triggered by</h2>
        <p><a href=${href("automations", job.triggeredBy.automation_id)}>the automation</a> that launched it</p>
        <${KeyValues} value=${job.triggeredBy} /></section>`}
      ${job.detail && html`<section><h2>Submitted</h2><pre class="code">${job.detail}</pre></section>`}
      <section><h2>Output</h2>
        ${job.output.items.length ? html`<${Output} items=${job.output.items} />` : html`<p class="muted">Nothing captured yet.</p>`}
        ${job.output.hasNextPage && html`<p class="muted">The first 500 chunks are shown; the rest comes a page at a time through the API (<code>launchJob { output(after: …) }</code>).</p>`}
      </section>`;
  }}<//>`;
}

// The jobs, filtered by state: the filter and the page are kept in the address (`#/launch?state=finished&after=…`),
// so that Back from a job, a reload or a link finds them again (app.js keys this list by its address).
function Jobs({ params, changed }) {
  const asked = (params.get("state") || "").toUpperCase();
  const [state, setState] = useState(JOB_STATES.includes(asked) ? asked : "");
  const pages = useCursorPages(params.getAll("after"));
  useKeptInAddress(href("launch"), { state: state.toLowerCase() }, pages);
  const result = useQuery(JOBS, { state: state || null, after: pages.after });
  useReloadedWhen(result, changed);
  return html`
    <h2>Jobs <select aria-label="state" value=${state}
      onChange=${(e) => { setState(e.target.value); pages.restart(); }}>
      <option value="">all</option>${JOB_STATES.map((s) => html`<option value=${s}>${shown(s)}</option>`)}
    </select></h2>
    <${Loaded} result=${result}>${({ launchJobs }) => html`
      <table class="grid" data-testid="jobs">
        <thead><tr><th>Job</th><th>State</th><th>Queue</th><th>Project</th><th>Enqueued</th><th>By</th><th>Runs</th></tr></thead>
        <tbody>${launchJobs.items.map((j) => html`<tr>
          <td><a href=${href("launch", "jobs", j.id)}><${JobId} id=${j.id} /></a></td>
          <td><${StateBadge} state=${j.state} /></td><td>${j.queue}</td><td>${j.entity}/${j.project}</td>
          <td><${Time} at=${j.enqueuedAt} /></td><td>${j.enqueuedBy}${j.triggeredBy && html` <span class="muted">(automation)</span>`}</td>
          <td>${j.runIds.map((r) => html`<a href=${runHref(j.entity, j.project, r)}>${r}</a> `)}</td></tr>`)}</tbody>
      </table>
      ${!launchJobs.items.length && html`<p class="muted">No job.</p>`}
      <${Pager} pages=${pages} page=${launchJobs} stale=${result.stale} testid="jobs-page" />`}<//>`;
}

export function Launch({ jobId, fromRun, params = new URLSearchParams(), query = "" }) {
  useTitle(jobId ? `Job ${jobId.slice(0, 8)}…${jobId.slice(-4)}` : fromRun ? "Clone a run" : "", "Launch");
  const result = useQuery(QUEUES);
  const viewer = useViewer();
  const [queueError, setQueueError] = useState(null);
  const [changed, setChanged] = useState(0);
  useLive(LAUNCH_EVENTS, () => { result.reload(); setChanged((n) => n + 1); });
  // Refused while a job waits or runs in it, or an automation launches into it: the error names them.
  const deleteQueue = async (name) => {
    if (!confirm(`Delete the queue "${name}"? Its ended jobs keep its name.`)) return;
    setQueueError(null);
    try { await gql(DELETE_QUEUE, { input: { name } }); result.reload(); } catch (err) { setQueueError(err); }
  };
  const deletes = may(viewer, "admin", []);
  if (jobId) return html`<main class="pad"><${JobDetail} id=${jobId} /></main>`;
  return html`<main class="pad"><${Loaded} result=${result}>${({ launchQueues: { items: launchQueues } }) => html`
    <h1>Launch</h1>
    <div class="columns">
      <section>
        <h2>Queues</h2>
        <table class="grid" data-testid="queues">
          <thead><tr><th>Queue</th><th>Resource</th><th>Takes jobs of</th><th>Created by</th><th>Jobs</th></tr></thead>
          <tbody>${launchQueues.map((q) => html`<tr><td>${q.name}</td><td>${shown(q.resource)}</td>
            <td>${q.takesEveryEntity ? html`<span class="muted">every entity</span>` : q.entities.join(", ") || html`<span class="muted">teams you do not see</span>`}</td><td>${q.createdBy}</td>
            <td>${q.activeJobs.toLocaleString()} active
              ${deletes && html` <button class="link small" onClick=${() => deleteQueue(q.name)}>Delete</button>`}</td></tr>`)}</tbody>
        </table>
        ${queueError && html`<${ErrorBox} error=${queueError} />`}
        ${!launchQueues.length && html`<p class="muted">No queue.</p>`}
      </section>
      ${mayAnywhere(viewer, "member", ["entity:"])
        ? html`<${CloneForm} queues=${launchQueues} fromRun=${fromRun} onDone=${(id) => { location.hash = href("launch", "jobs", id).slice(1); }} />`
        : html`<section data-testid="clone-refused"><h2>Clone a run</h2>
            <p class="muted">Enqueueing a job needs member on the run's entity; this key is ${shown(viewer.role)}. An admin grants it (grantRole).</p></section>`}
    </div>
    <${Jobs} key=${query} params=${params} changed=${changed} />
  `}<//></main>`;
}
