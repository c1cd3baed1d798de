// An automation's trigger and action as sentences and a short list, its raw JSON one click away: the API's JSON
// (every field the trigger may have, most of them null) made a reader hunt for the two that mattered.

import { html } from "../html.js";

const EVENTS = {
  artifact_version_logged: "an artifact version is logged",
  version_linked: "a version is linked to a registered model",
  alias_added: "an alias is set or moved",
  tag_added: "a tag is added",
  run_finished: "a run finishes",
  metric_threshold: "a run's metric crosses a threshold",
};

// What a trigger's or an action's fields are called here; a field not named is shown by its own name.
const LABELS = {
  entity: "entity", project: "project", collection: "artifact", registered_model: "registered model",
  alias_pattern: "alias", tag_pattern: "tag", run_state: "run state", queue: "queue", url: "URL",
  max_attempts: "attempts at most", git_remote: "git remote", git_commit: "git commit", entry_point: "entry point",
  image: "image", config: "config", payload: "payload",
};

const given = (v) => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length)
  && !(typeof v === "object" && !Array.isArray(v) && !Object.keys(v).length);

function shownValue(v) {
  if (Array.isArray(v)) return v.join(" ");
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// The fields that say something (nulls, empty lists and objects left out), nested ones (a job's source) flattened.
export function facts(spec, skip = []) {
  const out = [];
  for (const [key, value] of Object.entries(spec || {})) {
    if (skip.includes(key) || !given(value)) continue;
    if (key === "source" && typeof value === "object") out.push(...facts(value, ["kind"]));
    else out.push([LABELS[key] || key.replaceAll("_", " "), shownValue(value)]);
  }
  return out;
}

export function triggerSentence(trigger) {
  const when = EVENTS[trigger.event] || trigger.event;
  if (trigger.event === "metric_threshold" && trigger.metric) {
    return `When ${trigger.metric} ${trigger.op || "crosses"} ${trigger.threshold ?? ""}`.trim();
  }
  return `When ${when}`;
}

export function actionSentence(action) {
  if (action.kind === "webhook") return "Then post to a webhook";
  if (action.kind === "launch" || action.queue) {
    return `Then launch a job${action.queue ? ` on queue ${action.queue}` : ""}`;
  }
  return `Then ${action.kind || "act"}`;
}

function Facts({ rows }) {
  if (!rows.length) return html`<p class="muted">anything</p>`;
  return html`<table class="kv">
    ${rows.map(([k, v]) => html`<tr><th>${k}</th><td><code>${v}</code></td></tr>`)}
  </table>`;
}

export function AutomationSpec({ trigger, action }) {
  const threshold = trigger.event === "metric_threshold" ? ["metric", "op", "threshold"] : [];
  return html`<div class="columns" data-testid="automation-spec">
    <div><h3>${triggerSentence(trigger)}</h3><${Facts} rows=${facts(trigger, ["event", ...threshold])} /></div>
    <div><h3>${actionSentence(action)}</h3><${Facts} rows=${facts(action, ["kind", "queue"])} /></div>
  </div>
  <details class="raw"><summary>JSON</summary>
    <pre class="code">${JSON.stringify({ trigger, action }, null, 2)}</pre>
  </details>`;
}
