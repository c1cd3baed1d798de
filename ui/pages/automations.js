// Automations: what each one watches and does, switched on or off, and its firings and webhook deliveries.
import { useState } from "preact/hooks";
import { gql, useQuery, useLive } from "../api.js";
import { html, href, Loaded, Time, ErrorBox, Badge } from "../html.js";

const AUTOMATIONS = `{
  automations {
    id name description trigger action cooldownS enabled createdAt createdBy lastFiredAt
    firings(first: 20) { eventId eventType actor status jobId detail occurredAt doneAt }
    deliveries(first: 20) { eventId attempt url statusCode error durationMs attemptedAt }
  }
}`;

const SET_ENABLED = `mutation Enable($id: ID!, $enabled: Boolean!) { setAutomationEnabled(id: $id, enabled: $enabled) { id enabled } }`;

const EVENTS = { types: ["automations.automation_created", "automations.automation_enabled", "automations.automation_disabled", "automations.automation_fired", "automations.webhook_attempted"] };

function Automation({ a, reload }) {
  const [error, setError] = useState(null);
  const toggle = async () => {
    setError(null);
    try { await gql(SET_ENABLED, { id: a.id, enabled: !a.enabled }); reload(); } catch (err) { setError(err); }
  };
  return html`
    <article class="card automation" data-testid="automation">
      <header>
        <h2>${a.name} ${a.enabled ? html`<${Badge} kind="state-finished">enabled<//>` : html`<${Badge} kind="state-cancelled">disabled<//>`}</h2>
        <button onClick=${toggle}>${a.enabled ? "Disable" : "Enable"}</button>
      </header>
      ${a.description && html`<p>${a.description}</p>`}
      ${error && html`<${ErrorBox} error=${error} />`}
      <p class="muted">created by ${a.createdBy} <${Time} at=${a.createdAt} /> · cooldown ${a.cooldownS} s · last fired <${Time} at=${a.lastFiredAt} /></p>
      <div class="columns">
        <div><h3>When</h3><pre class="code">${JSON.stringify(a.trigger, null, 2)}</pre></div>
        <div><h3>Then</h3><pre class="code">${JSON.stringify(a.action, null, 2)}</pre></div>
      </div>
      <details open=${a.firings.length > 0 && a.firings.length < 5}>
        <summary>${a.firings.length} recent firings</summary>
        <table class="grid">
          <thead><tr><th>When</th><th>Event</th><th>Caused by</th><th>Status</th><th>Result</th></tr></thead>
          <tbody>${a.firings.map((f) => html`<tr>
            <td><${Time} at=${f.occurredAt} /></td><td><code>${f.eventType}</code></td><td>${f.actor}</td>
            <td><span class="badge status-${f.status}">${f.status}</span></td>
            <td>${f.jobId ? html`job <a href=${href("launch", "jobs", f.jobId)}>${f.jobId.slice(0, 8)}</a>` : ""} ${f.detail || ""}</td></tr>`)}</tbody>
        </table>
      </details>
      ${a.deliveries.length > 0 && html`<details>
        <summary>${a.deliveries.length} webhook deliveries</summary>
        <table class="grid">
          <thead><tr><th>When</th><th>Attempt</th><th>URL</th><th>Answer</th><th>Time</th></tr></thead>
          <tbody>${a.deliveries.map((d) => html`<tr>
            <td><${Time} at=${d.attemptedAt} /></td><td>${d.attempt}</td><td><code>${d.url}</code></td>
            <td>${d.statusCode ?? html`<span class="error-text">${d.error}</span>`}</td><td>${d.durationMs.toFixed(0)} ms</td></tr>`)}</tbody>
        </table>
      </details>`}
    </article>`;
}

export function Automations() {
  const result = useQuery(AUTOMATIONS);
  useLive(EVENTS, result.reload);
  return html`<main class="pad"><h1>Automations</h1><${Loaded} result=${result}>${({ automations }) => html`
    ${automations.map((a) => html`<${Automation} key=${a.id} a=${a} reload=${result.reload} />`)}
    ${!automations.length && html`<p class="muted">No automation yet: <code>modelreg automation create</code> or the createAutomation mutation.</p>`}
  `}<//></main>`;
}
