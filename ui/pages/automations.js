// Automations: what each one watches and does, switched on or off, and its firings and webhook deliveries.
import { useState } from "preact/hooks";
import { gql, useQuery, useLive } from "../api.js";
import { isAdmin, may, useViewer } from "../access.js";
import { html, href, shown, Loaded, Time, ErrorBox, Badge, JobId, useTitle, Warnings } from "../html.js";
import { AutomationSpec } from "../components/automation_spec.js";
import { Pager, useCursorPages, useKeptInAddress } from "../components/pager.js";

// An automation with its latest 20 firings and deliveries.
const FIELDS = `id name description trigger action cooldownS enabled createdAt createdBy lastFiredAt warnings
  firings(first: 20) { items { eventId eventType actor status jobId detail occurredAt doneAt retries } }
  deliveries(first: 20) { items { eventId attempt url statusCode error durationMs attemptedAt } }`;
// A page of automations, oldest first.
// Written into the query, not a variable: the server counts a variable `first` as the most a page holds (500),
// and 500 automations with their firings and deliveries are over the cost it takes.
const PAGE_SIZE = 50;
const AUTOMATIONS = `query Automations($after: String) {
  automations(first: ${PAGE_SIZE}, after: $after) { items { ${FIELDS} } endCursor hasNextPage } }`;
const ONE = `query Automation($id: ID!) { automation(id: $id) { ${FIELDS} deletedAt } }`;

const DELETE = `mutation Delete($input: DeleteAutomationInput!) { deleteAutomation(input: $input) { id } }`;
const RETRY = `mutation Retry($input: RetryFiringInput!) { retryFiring(input: $input) { status } }`;
const SET_ENABLED = `mutation Enable($input: SetAutomationEnabledInput!) { setAutomationEnabled(input: $input) { id enabled } }`;

const ROTATE = `mutation Rotate($input: RotateWebhookSecretInput!) { rotateWebhookSecret(input: $input) { webhookSecret previousSignsUntil } }`;
const CHANGE = `mutation Change($input: ChangeAutomationInput!) { changeAutomation(input: $input) { id } }`;
const CREATE = `mutation Create($input: CreateAutomationInput!) { createAutomation(input: $input) { automation { id } webhookSecret } }`;

const TRIGGERS = ["artifact_version_logged", "version_linked", "alias_added", "tag_added", "run_finished", "metric_threshold"];

// The fields a user filled in, as the API's trigger: empty ones left out (they match everything).
export function triggerOf(form) {
  const trigger = { event: form.event };
  for (const k of ["entity", "project", "collection", "registered_model", "alias_pattern", "tag_pattern", "metric", "op"]) {
    if (form[k]) trigger[k] = form[k];
  }
  if (form.threshold !== "") trigger.threshold = Number(form.threshold);
  return trigger;
}

const BLANK = {
  name: "", event: "alias_added", entity: "", project: "", collection: "", registered_model: "", alias_pattern: "",
  tag_pattern: "", metric: "", op: "", threshold: "", cooldown: "0", kind: "webhook", url: "", payload: '{"event": "${event_type}"}',
  queue: "", git_remote: "", git_commit: "", entry_point: "python train.py", config: "{}",
};
const FORM_TRIGGER = ["entity", "project", "collection", "registered_model", "alias_pattern", "tag_pattern", "metric", "op"];

// An automation as the form shows it, to be changed.
export function formOf(a) {
  const t = a.trigger, act = a.action, source = act.source || {};
  const form = { ...BLANK, name: a.name, event: t.event, cooldown: String(a.cooldownS), kind: act.kind };
  for (const k of FORM_TRIGGER) form[k] = t[k] ?? "";
  form.threshold = t.threshold ?? "";
  if (act.kind === "webhook") Object.assign(form, { url: act.url, payload: JSON.stringify(act.payload || {}) });
  else Object.assign(form, { queue: act.queue, git_remote: source.git_remote || "", git_commit: source.git_commit || "",
    entry_point: (source.entry_point || []).join(" "), config: JSON.stringify(act.config || {}) });
  return form;
}

// The form's trigger and action, over what the automation had that the form does not show (a run_state, an image
// source, a time limit, a webhook's max_attempts): a change through the form keeps those.
export function specOf(form, before = null) {
  const trigger = { ...(before ? Object.fromEntries(Object.entries(before.trigger).filter(([k]) => !FORM_TRIGGER.includes(k) && k !== "threshold")) : {}), ...triggerOf(form) };
  const kept = before?.action || {};
  const action = form.kind === "webhook"
    ? { ...kept, kind: "webhook", url: form.url, payload: JSON.parse(form.payload || "{}") }
    // Where a changed automation launches stays as it was (it may be "${entity}"): the form's entity is its trigger's.
    : { ...kept, kind: "launch", queue: form.queue, entity: before ? kept.entity : form.entity || "default",
        project: before ? kept.project : form.project || "default",
        source: kept.source && kept.source.kind !== "git" ? kept.source
          : { ...(kept.source || {}), kind: "git", git_remote: form.git_remote, git_commit: form.git_commit || undefined,
              // Split on spaces only when changed: ["python", "t.py", "--note", "a b"] would become five arguments.
              entry_point: kept.source && form.entry_point === (kept.source.entry_point || []).join(" ") ? kept.source.entry_point : form.entry_point.split(/\s+/) },
        config: JSON.parse(form.config || "{}") };
  return { trigger, action };
}

// A new automation, or (`automation`) a change of one: its whole spec, its action of the same kind.
function AutomationForm({ automation = null, onDone }) {
  const [form, setForm] = useState(automation ? formOf(automation) : BLANK);
  const [error, setError] = useState(null);
  const [secret, setSecret] = useState(null);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const field = (k, label, placeholder = "") => html`<label>${label} <input name=${k} value=${form[k]} placeholder=${placeholder} onInput=${set(k)} /></label>`;
  const imageSource = automation && automation.action.kind === "launch" && automation.action.source?.kind !== "git";
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const { trigger, action } = specOf(form, automation);
      const spec = { name: form.name, trigger, action, cooldownS: Number(form.cooldown) || 0 };
      if (automation) {
        await gql(CHANGE, { input: { id: automation.id, description: automation.description, ...spec } });
      } else {
        const { createAutomation } = await gql(CREATE, { input: spec });
        setSecret(createAutomation.webhookSecret);
        setForm(BLANK);
      }
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  return html`
      <form class="stack" onSubmit=${submit} data-testid=${automation ? "change-automation" : "create-automation"}>
        ${field("name", "Name")}
        <label>When <select name="event" value=${form.event} onChange=${set("event")}>${TRIGGERS.map((t) => html`<option>${t}</option>`)}</select></label>
        ${field("entity", "Entity", "any")} ${field("project", "Project", "any")} ${field("collection", "Artifact collection", "any")}
        ${field("registered_model", "Registered model", "any")} ${field("alias_pattern", "Alias pattern (regex)", "any")}
        ${field("tag_pattern", "Tag pattern (regex)", "any")} ${field("metric", "Metric")} ${field("op", "Op (>, >=, <, <=)")} ${field("threshold", "Threshold")}
        ${field("cooldown", "Cooldown (s)")}
        <label>Then <select name="kind" value=${form.kind} onChange=${set("kind")} disabled=${!!automation}><option value="webhook">call a webhook</option><option value="launch">enqueue a job</option></select></label>
        ${form.kind === "webhook"
          ? html`${field("url", "URL", "https://ci.example.com/hook")}
                 <label>Payload (JSON template) <textarea name="payload" rows="2" value=${form.payload} onInput=${set("payload")}></textarea></label>`
          : html`${field("queue", "Queue")} ${!imageSource && html`${field("git_remote", "Git remote")} ${field("git_commit", "Commit")} ${field("entry_point", "Command")}`}
                 <label>Config (JSON template) <textarea name="config" rows="2" value=${form.config} onInput=${set("config")}></textarea></label>`}
        <button type="submit">${automation ? "Save" : "Create"}</button>
        ${error && html`<${ErrorBox} error=${error} />`}
        ${secret && html`<p data-testid="webhook-secret">Webhook secret (shown once): <code>${secret}</code></p>`}
      </form>`;
}

function CreateForm({ onDone }) {
  return html`<details class="card"><summary>New automation</summary><${AutomationForm} onDone=${onDone} /></details>`;
}

const EVENTS = { types: ["automations.automation_created", "automations.automation_enabled", "automations.automation_disabled", "automations.automation_changed", "automations.automation_deleted", "automations.automation_fired", "automations.firing_retried", "automations.webhook_attempted"] };

function Automation({ a, reload }) {
  const [error, setError] = useState(null);
  const firings = a.firings.items;
  const deliveries = a.deliveries.items;
  const viewer = useViewer();
  const switches = may(viewer, "member", []);
  const [editing, setEditing] = useState(false);
  // Only its creator changes it: it acts with their rights; its creator or an admin retries a firing.
  const changes = viewer?.id === a.createdBy;
  const retries = changes || isAdmin(viewer);
  const toggle = async () => {
    setError(null);
    try { await gql(SET_ENABLED, { input: { id: a.id, enabled: !a.enabled } }); reload(); } catch (err) { setError(err); }
  };
  // A firing that failed (a webhook down for longer than its retries) or was skipped, carried out again.
  const retry = async (f) => {
    setError(null);
    try { await gql(RETRY, { input: { id: a.id, eventId: f.eventId } }); reload(); } catch (err) { setError(err); }
  };
  // A new secret, shown once; the previous one signs beside it for a day while the receiver is switched over.
  const [rotated, setRotated] = useState(null);
  const rotate = async () => {
    if (!confirm(`Give "${a.name}" a new webhook secret? Deliveries are signed with it from now on, and with the old one too for a day.`)) return;
    setError(null);
    try { setRotated((await gql(ROTATE, { input: { id: a.id } })).rotateWebhookSecret); } catch (err) { setError(err); }
  };
  const remove = async () => {
    if (!confirm(`Delete the automation "${a.name}"? It fires no more; its firings stay in the history.`)) return;
    setError(null);
    try { await gql(DELETE, { input: { id: a.id } }); reload(); } catch (err) { setError(err); }
  };
  return html`
    <article class="card automation" data-testid="automation">
      <header>
        <h2><a href=${href("automations", a.id)}>${a.name}</a> ${a.enabled ? html`<${Badge} kind="state-finished">enabled<//>` : html`<${Badge} kind="state-cancelled">disabled<//>`}</h2>
        ${switches && html`<button onClick=${toggle}>${a.enabled ? "Disable" : "Enable"}</button>
          <button class="link small" onClick=${remove}>Delete</button>`}
        ${changes && html`<button class="link small" onClick=${() => setEditing(!editing)}>${editing ? "Close" : "Edit"}</button>`}
        ${changes && a.action.kind === "webhook" && html`<button class="link small" onClick=${rotate}>Rotate secret</button>`}
      </header>
      ${a.description && html`<p>${a.description}</p>`}
      <${Warnings} warnings=${a.warnings} />
      ${editing && html`<${AutomationForm} automation=${a} onDone=${() => { setEditing(false); reload(); }} />`}
      ${error && html`<${ErrorBox} error=${error} />`}
      ${rotated && html`<p data-testid="rotated-secret">New webhook secret (shown once): <code>${rotated.webhookSecret}</code>
        ${rotated.previousSignsUntil && html`<span class="muted"> · the previous one signs too until <${Time} at=${rotated.previousSignsUntil} /></span>`}</p>`}
      <p class="muted">created by ${a.createdBy} <${Time} at=${a.createdAt} /> · cooldown ${a.cooldownS} s · last fired <${Time} at=${a.lastFiredAt} /></p>
      <${AutomationSpec} trigger=${a.trigger} action=${a.action} />
      <details open=${firings.length > 0 && firings.length < 5}>
        <summary>${firings.length} recent firings</summary>
        <table class="grid">
          <thead><tr><th>When</th><th>Event</th><th>Caused by</th><th>Status</th><th>Result</th></tr></thead>
          <tbody>${firings.map((f) => html`<tr>
            <td><${Time} at=${f.occurredAt} /></td><td><code>${f.eventType}</code></td><td>${f.actor}</td>
            <td><span class="badge status-${shown(f.status)}">${shown(f.status)}</span></td>
            <td>${f.jobId ? html`job <a href=${href("launch", "jobs", f.jobId)}><${JobId} id=${f.jobId} /></a>` : ""} ${f.detail || ""}
              ${f.retries > 0 && html`<span class="muted">retried ${f.retries}×</span>`}
              ${retries && a.enabled && (f.status === "FAILED" || f.status === "SKIPPED") && html`<button class="link small" onClick=${() => retry(f)}>Retry</button>`}</td></tr>`)}</tbody>
        </table>
      </details>
      ${deliveries.length > 0 && html`<details>
        <summary>${deliveries.length} webhook deliveries</summary>
        <table class="grid">
          <thead><tr><th>When</th><th>Attempt</th><th>URL</th><th>Answer</th><th>Time</th></tr></thead>
          <tbody>${deliveries.map((d) => html`<tr>
            <td><${Time} at=${d.attemptedAt} /></td><td>${d.attempt}</td><td><code>${d.url}</code></td>
            <td>${d.statusCode ?? html`<span class="error-text">${d.error}</span>`}</td><td>${d.durationMs.toFixed(0)} ms</td></tr>`)}</tbody>
        </table>
      </details>`}
    </article>`;
}

// Its page is kept in the address (`#/automations?after=…`): Back from a job an automation launched finds it again.
export function Automations({ after = [] }) {
  useTitle("Automations");
  const pages = useCursorPages(after);
  useKeptInAddress(href("automations"), {}, pages);
  const result = useQuery(AUTOMATIONS, { after: pages.after });
  const viewer = useViewer();
  useLive(EVENTS, result.reload);
  // Creating one needs member on the installation (the key's own role): not offered to viewers.
  const creates = may(viewer, "member", []);
  return html`<main class="pad"><h1>Automations</h1>${creates && html`<${CreateForm} onDone=${result.reload} />`}<${Loaded} result=${result}>${({ automations: page }) => html`
    ${page.items.map((a) => html`<${Automation} key=${a.id} a=${a} reload=${result.reload} />`)}
    ${!page.items.length && pages.number === 1 && html`<p class="muted">No automation yet: <code>modelreg automation create</code> or the createAutomation mutation.</p>`}
    ${(pages.number > 1 || page.hasNextPage) && html`<${Pager} pages=${pages} page=${page} stale=${result.stale} testid="automations-page" />`}
  `}<//></main>`;
}

// One automation, at its own address (#/automations/<id>): a link from a job it launched or from the audit log
// finds it among hundreds, and one past the list's first 100.
export function OneAutomation({ id }) {
  useTitle("Automation");
  const result = useQuery(ONE, { id });
  useLive(EVENTS, result.reload);
  return html`<main class="pad"><p class="crumbs"><a href=${href("automations")}>Automations</a> / automation</p>
    <${Loaded} result=${result}>${({ automation }) => automation
      ? html`${automation.deletedAt && html`<p class="muted" data-testid="automation-deleted">Deleted <${Time} at=${automation.deletedAt} />: it fires no more.</p>`}
        <${Automation} a=${automation} reload=${result.reload} />`
      : html`<p class="muted">No automation ${id}: it was deleted, or it is not yours to read.</p>`}<//></main>`;
}
