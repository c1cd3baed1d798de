// The audit log: every action, newest first, filtered by actor, action and time, a page at a time.
import { useEffect, useState } from "preact/hooks";
import { useQuery } from "../api.js";
import { html, href, Loaded, RecordedOffline, Time, useTitle } from "../html.js";
import { Pager, useCursorPages, useKeptInAddress } from "../components/pager.js";

const AUDIT = `query Audit($actor: String, $action: String, $since: DateTime, $after: String) {
  auditLog(actor: $actor, action: $action, since: $since, first: 50, after: $after) {
    items { eventId action actor occurredAt recordedOfflineAt details } endCursor hasNextPage
  }
}`;

// Offered as the Action filter's suggestions: the filter takes an action's whole name only.
const ACTIONS = `query AuditActions { auditActions }`;
const TYPING_MS = 300; // a filter typed is asked for once the typing pauses, not at every key

const short = (text) => (text.length > 160 ? text.slice(0, 160) + "…" : text);

// The filters and the page are kept in the address (`#/audit?action=registry.alias_added&after=…`), so that Back
// from elsewhere, a reload or a link finds them again (app.js keys the page by its address).
export function AuditLog({ params = new URLSearchParams() }) {
  const [filters, setFilters] = useState(() => ({ actor: params.get("actor") || "", action: params.get("action") || "", since: params.get("since") || "" }));
  const [typed, setTyped] = useState(filters);
  const pages = useCursorPages(params.getAll("after"));
  useTitle("Audit log");
  useKeptInAddress(href("audit"), filters, pages);
  const apply = (next) => {
    if (next.actor === filters.actor && next.action === filters.action && next.since === filters.since) return;
    setFilters(next);
    pages.restart();
  };
  useEffect(() => {
    const t = setTimeout(() => apply(typed), TYPING_MS);
    return () => clearTimeout(t);
  }, [typed]);
  // A since from an address (`?since=yesterday`) may be no time at all: said, and left out of the query.
  const since = filters.since ? new Date(filters.since) : null;
  const sinceValid = !since || !Number.isNaN(since.getTime());
  const variables = {
    actor: filters.actor || null, action: filters.action || null,
    since: since && sinceValid ? since.toISOString() : null, after: pages.after,
  };
  const result = useQuery(AUDIT, variables);
  const actions = useQuery(ACTIONS);
  const type = (k) => (e) => setTyped({ ...typed, [k]: e.target.value });
  const setSince = (e) => { const next = { ...typed, since: e.target.value }; setTyped(next); apply(next); };
  return html`<main class="pad"><h1>Audit log</h1>
    <form class="row" onSubmit=${(e) => { e.preventDefault(); apply(typed); }} data-testid="audit-filters">
      <label>Actor <input value=${typed.actor} placeholder="user:alice" onInput=${type("actor")} /></label>
      <label>Action <input value=${typed.action} placeholder="registry.alias_added" list="audit-actions"
        onInput=${type("action")} /></label>
      <datalist id="audit-actions">${(actions.data?.auditActions || []).map((a) => html`<option value=${a} />`)}</datalist>
      <label>Since <input type="datetime-local" value=${sinceValid ? filters.since : ""} aria-invalid=${!sinceValid}
        onChange=${setSince} /></label>
    </form>
    ${!sinceValid && html`<p class="error" role="alert" data-testid="since-invalid">Since: "${filters.since}" is not a
      time (write it as 2024-05-01T09:30); the log is shown from its start.</p>`}
    <${Loaded} result=${result}>${({ auditLog }) => html`
      <table class="grid" data-testid="audit">
        <thead><tr><th>When</th><th>Who</th><th>Action</th><th>Details</th></tr></thead>
        <tbody>${auditLog.items.map((r) => html`<tr>
          <td><${Time} at=${r.occurredAt} /><${RecordedOffline} at=${r.recordedOfflineAt} /></td>
          <td>${r.actor}</td><td><code>${r.action}</code></td>
          <td><code class="details" title=${JSON.stringify(r.details)}>${short(JSON.stringify(r.details))}</code></td></tr>`)}</tbody>
      </table>
      ${!auditLog.items.length && html`<p class="muted" data-testid="audit-empty">No action matches.</p>`}
      <${Pager} pages=${pages} page=${auditLog} stale=${result.stale} previous="← Newer" next="Older →" />`}<//>
  </main>`;
}
