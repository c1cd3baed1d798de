// Cursor paging over one of the API's pages ({ items, endCursor, hasNextPage }). The API's cursors only go
// forward, so the cursor each page started after is kept: Previous goes back exactly, Next adds one.
import { useState } from "preact/hooks";
import { html } from "../html.js";

export function useCursorPages() {
  const [cursors, setCursors] = useState([null]);
  return {
    after: cursors[cursors.length - 1],
    number: cursors.length,
    next: (endCursor) => setCursors((before) => [...before, endCursor]),
    previous: () => setCursors((before) => (before.length > 1 ? before.slice(0, -1) : before)),
    restart: () => setCursors([null]),
  };
}

// Previous and Next for `page`. Next waits while the page shown is `stale` (the answer to newer variables
// is on its way), so that a quick second click never pages from an old cursor. `children` replace the
// page number in the middle (the runs page adds the total).
export function Pager({ pages, page, stale = false, previous = "← Previous", next = "Next →", children }) {
  return html`<nav class="pager">
    <button disabled=${pages.number === 1} onClick=${pages.previous}>${previous}</button>
    ${children ?? html`<span class="muted">page ${pages.number}</span>`}
    <button disabled=${!page.hasNextPage || stale} onClick=${() => pages.next(page.endCursor)}>${next}</button>
  </nav>`;
}
