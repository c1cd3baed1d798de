// htm tagged templates bound to Preact (no JSX, so no build), and the small pieces every page shares.
import { h } from "preact";
import htm from "htm";
import { marked } from "marked";
import DOMPurify from "dompurify";
import { useEffect, useState } from "preact/hooks";
import { Unreachable } from "./api.js";

export const html = htm.bind(h);

export const enc = encodeURIComponent;

export function href(...parts) {
  return "#/" + parts.map((p) => enc(p)).join("/");
}

export function Loading() {
  return html`<p class="muted" role="status">Loading…</p>`;
}

export function ErrorBox({ error }) {
  return html`<div class="error" role="alert">${error?.message || String(error)}</div>`;
}

// What the server accepted but says the user should know (a grant to a name nobody holds a key for, an automation
// whose creator holds none): an answer's `warnings`.
export function Warnings({ warnings }) {
  if (!warnings?.length) return null;
  return html`<ul class="warnings" role="status" data-testid="warnings">${warnings.map((w) => html`<li>${w}</li>`)}</ul>`;
}

// A query that found the server unreachable: useQuery asks again by itself (see there); `retry` asks at once.
export function Unanswered({ retry }) {
  return html`<div class="error" role="alert" data-testid="unreachable">
    modelreg is not answering; retrying… <button class="link" onClick=${retry}>Retry now</button>
  </div>`;
}

// Shows loading and errors of a useQuery result, else renders `children(data)`.
export function Loaded({ result, children }) {
  if (result.error instanceof Unreachable) return html`<${Unanswered} retry=${result.reload} />`;
  if (result.error) return html`<${ErrorBox} error=${result.error} />`;
  if (!result.data) return html`<${Loading} />`;
  return children(result.data);
}

// The window's title for a page, most particular first: `useTitle("fraud-detector v3")` ->
// "fraud-detector v3 · modelreg" (the browser's tabs, history and bookmarks tell pages apart by it).
export function useTitle(...parts) {
  const title = [...parts.filter(Boolean), "modelreg"].join(" · ");
  useEffect(() => { document.title = title; }, [title]);
}

export function Badge({ children, kind = "" }) {
  return html`<span class="badge ${kind}">${children}</span>`;
}

// Names with numbers in them as people count: t2 before t10 (a plain sort put t1, t10, t100, t2).
const NATURAL = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });
export function naturally(names) {
  return [...names].sort(NATURAL.compare);
}

// The first `few` of `items` (each drawn by `each`), then "+N more" that shows the rest: a model with 100 tags
// made a wall of badges that pushed everything after it out of sight.
export function FirstFew({ items, few, each, testid }) {
  const [all, setAll] = useState(false);
  const shownItems = all || items.length <= few + 1 ? items : items.slice(0, few);
  const hidden = items.length - shownItems.length;
  return html`${shownItems.map(each)}${hidden > 0 && html`<button class="link small more" data-testid=${testid}
    title=${items.slice(few).join(", ")} onClick=${() => setAll(true)}>+${hidden} more</button>`}`;
}

export function AliasBadges({ aliases, protectedAliases = [] }) {
  return aliases.map(
    (a) => html`<${Badge} kind=${protectedAliases.includes(a) ? "alias protected" : "alias"}>${a}<//> `,
  );
}

// A value of one of the API's enums as people read it: RUNNING -> running, LOCAL_PROCESS -> local-process.
export function shown(value) {
  return value ? value.toLowerCase().replaceAll("_", "-") : value;
}

export function StateBadge({ state, testid }) {
  return html`<span class="badge state-${shown(state)}" data-testid=${testid}>${shown(state)}</span>`;
}

// When something happened: "5 min ago" (the exact UTC time on hover), or both when `exact`.
export function Time({ at, exact = false }) {
  if (!at) return html`<span class="muted">—</span>`;
  const when = new Date(at);
  const utc = when.toISOString().replace("T", " ").slice(0, 19) + " UTC";
  if (exact) return html`<time datetime=${at}>${utc} <span class="muted">(${ago(when)})</span></time>`;
  return html`<time datetime=${at} title=${utc}>${ago(when)}</time>`;
}

// An offline run's command: when its client says it happened, shown beside the server's time of receipt.
export function RecordedOffline({ at }) {
  if (!at) return null;
  const utc = new Date(at).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  return html` <span class="muted" data-testid="recorded-offline"
    title="the time its client recorded; the server received it later">(recorded offline at ${utc})</span>`;
}

function ago(when) {
  const s = (Date.now() - when.getTime()) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 86400 * 30) return `${Math.floor(s / 86400)} days ago`;
  return when.toISOString().slice(0, 10);
}

export function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

// What a card may not hold besides scripts (DOMPurify strips those): styles, classes and forms. Any member
// writes a card and admins read it; a full-page form styled as this app's login would ask them for their key.
const CARD_RULES = {
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "label", "fieldset", "dialog",
    // What would load from another host by itself, as an image does (below): a pixel would learn who reads the card.
    "video", "audio", "source", "track", "picture", "image", "feimage", "use"],
  // data-remote-src: set by the hook below only; written by a card's author, its image loaded on a click without
  // naming its host.
  FORBID_ATTR: ["style", "class", "id", "srcset", "background", "poster", "data-remote-src"],
};

// A card's image from another host loads only when its reader asks (a click): any member writes a card, and a
// remote image would tell its host who read it and when. Images of this registry and data: URLs load as usual.
// Decided on the URL as the browser resolves it ("/\\host/x", a tab inside "https:" and the like lead elsewhere).
DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName !== "IMG" || !node.hasAttribute("src")) return;
  const src = node.getAttribute("src");
  let url;
  try { url = new URL(src, location.href); } catch { url = null; }
  if (url && (url.protocol === "data:" || url.origin === location.origin)) return;
  node.removeAttribute("src");
  if (!url) return;  // the browser would load nothing either
  node.setAttribute("data-remote-src", url.href);
  const host = url.host;
  node.setAttribute("alt", `${node.getAttribute("alt") || "image"} (from ${host}: click to load)`);
  node.setAttribute("title", `Loads from ${host}, which then learns that you read this card`);
});

function loadRemoteImage(event) {
  const img = event.target;
  if (img.nodeName === "IMG" && img.dataset.remoteSrc) {
    img.setAttribute("src", img.dataset.remoteSrc);
    delete img.dataset.remoteSrc;
  }
}

// Markdown from the API (a model card) as sanitised HTML: marked renders, DOMPurify keeps what CARD_RULES allow.
export function Markdown({ text, empty = "Nothing written yet." }) {
  if (!text) return html`<p class="muted">${empty}</p>`;
  let safe;
  try {
    safe = DOMPurify.sanitize(marked.parse(text), CARD_RULES);
  } catch {
    // A card the renderer cannot take (100,000 nested quotes overflow its stack) is shown as it was written: thrown,
    // it blanked the version page, its Edit button too.
    return html`<pre class="markdown unrendered">${text}</pre>`;
  }
  return html`<div class="markdown" onClick=${loadRemoteImage} dangerouslySetInnerHTML=${{ __html: safe }} />`;
}

export function Tabs({ tabs, current, link }) {
  return html`<nav class="tabs" role="tablist">
    ${tabs.map(([id, label]) => html`<a role="tab" aria-selected=${id === current} class=${id === current ? "active" : ""} href=${link(id)}>${label}</a>`)}
  </nav>`;
}

export function runHref(entity, project, runId) {
  return href("runs", entity, project, runId);
}

export function artifactHref(id, tab) {
  return tab ? href("artifacts", id, tab) : href("artifacts", id);
}

// A job's id, short: its first 8 characters are its time (UUIDv7), shared by jobs enqueued within a minute, so its
// last 4 (random) go with them; the whole id is its title.
export const JobId = ({ id }) => html`<code title=${id}>${id.slice(0, 8)}…${id.slice(-4)}</code>`;

