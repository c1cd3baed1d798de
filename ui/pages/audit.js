// The audit log: every action, newest first, filtered by actor, action and time, a page at a time.
import { useState } from "preact/hooks";
import { useQuery } from "../api.js";
import { html, href, Loaded, RecordedOffline, Time, useTitle } from "../html.js";
import { Pager, useCursorPages, useKeptInAddress } from "../components/pager.js";

const AUDIT = `query Audit($actor: String, $action: String, $since: DateTime, $after: String) {
  auditLog(actor: $actor, action: $action, since: $since, first: 50, after: $after) {
    items { eventId action actor occurredAt recordedOfflineAt details } endCursor hasNextPage
  }
}`;

const short = (text) => (text.length > 160 ? text.slice(0, 160) + "…" : text);

// The filters and the page are kept in the address (`#/audit?action=registry.alias_added&after=…`), so that Back
// from elsewhere, a reload or a link finds them again (app.js keys the page by its address).
export function AuditLog({ params = new URLSearchParams() }) {
  const [filters, setFilters] = useState(() => ({ actor: params.get("actor") || "", action: params.get("action") || "", since: params.get("since") || "" }));
  const pages = useCursorPages(params.getAll("after"));
  useTitle("Audit log");
  useKeptInAddress(href("audit"), filters, pages);
  const variables = {
    actor: filters.actor || null, action: filters.action || null,
    since: filters.since ? new Date(filters.since).toISOString() : null, after: pages.after,
  };
  const result = useQuery(AUDIT, variables);
  const set = (k) => (e) => { setFilters({ ...filters, [k]: e.target.value }); pages.restart(); };
  return html`<main class="pad"><h1>Audit log</h1>
    <form class="row" onSubmit=${(e) => e.preventDefault()} data-testid="audit-filters">
      <label>Actor <input value=${filters.actor} placeholder="user:alice" onInput=${set("actor")} /></label>
      <label>Action <input value=${filters.action} placeholder="registry.alias_added" onInput=${set("action")} /></label>
      <label>Since <input type="datetime-local" value=${filters.since} onChange=${set("since")} /></label>
    </form>
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
