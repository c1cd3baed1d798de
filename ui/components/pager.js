// Cursor paging over one of the API's pages ({ items, endCursor, hasNextPage }). The API's cursors only go
// forward, so the cursor each page started after is kept: Previous goes back exactly, Next adds one.
import { useEffect, useState } from "preact/hooks";
import { html } from "../html.js";

// `kept`: the cursors a page's address carries (see keepInAddress), the page it shows first.
export function useCursorPages(kept = []) {
  const [cursors, setCursors] = useState(() => [null, ...kept.filter(Boolean)]);
  return {
    after: cursors[cursors.length - 1],
    number: cursors.length,
    kept: cursors.slice(1),
    next: (endCursor) => setCursors((before) => [...before, endCursor]),
    previous: () => setCursors((before) => (before.length > 1 ? before.slice(0, -1) : before)),
    restart: () => setCursors([null]),
  };
}

// Previous and Next for `page`, and between them the page's number, with how many there are in all where the API
// counts them (`total` [one, many]: "page 2 · 45 runs"). Every list pages with the same words, but the ones that go
// back in time (the audit log, an action history), which say "← Newer" and "Older →". Next waits while the page
// shown is `stale` (the answer to newer variables is on its way), so that a quick second click never pages from an
// old cursor.
export function Pager({ pages, page, stale = false, previous = "← Previous", next = "Next →", total, testid }) {
  const counted = total && html` · ${total[0].toLocaleString()} ${total[0] === 1 ? total[1] : total[2]}`;
  return html`<nav class="pager">
    <button disabled=${pages.number === 1} onClick=${pages.previous}>${previous}</button>
    <span class="muted" data-testid=${testid}>page ${pages.number}${counted}</span>
    <button disabled=${!page.hasNextPage || stale} onClick=${() => pages.next(page.endCursor)}>${next}</button>
  </nav>`;
}

// Keeps what a page shows (its filters, and its pages' cursors as `after`, once per page past the first) in the
// address, `#/audit?action=…&after=…`, so that Back from a row's page, a reload or a shared link finds them again.
// Replaced, not pushed: a filter or a page is not a page of its own, and no hashchange remounts the page (app.js
// keys such pages by their address, so a link to another one does).
export function useKeptInAddress(path, values, pages) {
  const kept = new URLSearchParams(Object.entries(values).filter(([, v]) => v));
  for (const cursor of pages?.kept ?? []) kept.append("after", cursor);
  const query = kept.toString();
  useEffect(() => {
    // Only while the address is still this page's: an effect run late (a busy browser) after a link had taken the
    // address elsewhere wrote this page's over it, and the app went back to this page.
    if (location.hash.split("?")[0] !== path) return;
    history.replaceState(null, "", `${path}${query ? "?" + query : ""}`);
  }, [path, query]);
}
