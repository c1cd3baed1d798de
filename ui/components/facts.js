// Facts about one thing, a label and its value per row (a version's or an artifact's Overview, a run's git).
import { html, Time, runHref } from "../html.js";

export function Facts({ children }) {
  return html`<table class="kv"><tbody>${children}</tbody></table>`;
}

export function Fact({ label, testid, children }) {
  return html`<tr><th>${label}</th><td data-testid=${testid}>${children}</td></tr>`;
}

// A JSON object (a config, a summary, metadata) as facts: nested values as JSON, nulls left out.
export function KeyValues({ value, empty = "None." }) {
  const entries = Object.entries(value || {}).filter(([, v]) => v !== null && v !== undefined);
  if (!entries.length) return html`<p class="muted">${empty}</p>`;
  return html`<${Facts}>
    ${entries.map(([k, v]) => html`<${Fact} label=${k}>${typeof v === "object" ? html`<code>${JSON.stringify(v)}</code>` : String(v)}<//>`)}
  <//>`;
}

// Where an artifact version comes from, as every page that shows one says it: who logged it and when, the
// run that produced it, and its digest.
export function ArtifactOrigin({ av }) {
  return html`
    <${Fact} label="Logged">by ${av.createdBy}, <${Time} at=${av.createdAt} /><//>
    <${Fact} label="Produced by">${av.loggedByRun
      ? html`<a href=${runHref(av.entity, av.project, av.loggedByRun)}>run ${av.loggedByRun}</a>`
      : html`<span class="muted">no run</span>`}<//>
    <${Fact} label="Digest"><code class="digest">${av.digest}</code><//>`;
}
