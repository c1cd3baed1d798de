// The shell: hash routes (so `/` is the only page the server needs to know), the login gate, the header.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { apiKey, gql, Unreachable } from "./api.js";
import { html, shown, useTitle, Unanswered } from "./html.js";
import { VIEWER, ViewerContext, isAdmin } from "./access.js";
import { Login } from "./pages/login.js";
import { Registry } from "./pages/registry.js";
import { VersionPage } from "./pages/version.js";
import { RunPage } from "./pages/run.js";
import { Projects, ProjectRuns } from "./pages/runs.js";
import { ComparePage } from "./pages/compare.js";
import { ArtifactPage } from "./pages/artifact.js";
import { Launch } from "./pages/launch.js";
import { Automations, OneAutomation } from "./pages/automations.js";
import { AuditLog } from "./pages/audit.js";
import { Access } from "./pages/access.js";

// A link with a broken %-escape (cut short when shared) names the page as written: thrown, it blanked the app.
function decodedOrAsWritten(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function route() {
  // "#/runs/acme/nature?state=failed": the path, then what a page keeps of its filters.
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(query);
  const parts = path.split("/").filter(Boolean).map(decodedOrAsWritten);
  const [section, ...rest] = parts;
  switch (section) {
    case undefined:
    case "models":
      if (rest.length >= 2) return { page: "version", model: rest[0], version: rest[1], tab: rest[2] || "overview", query, params };
      return { page: "registry", model: rest[0], query, after: params.getAll("after") };
    case "artifacts":
      if (!rest[0]) return { page: "notfound" };
      return { page: "artifact", id: rest[0], tab: rest[1] || "overview", query, params };
    case "runs":
      if (rest.length >= 3) return { page: "run", entity: rest[0], project: rest[1], runId: rest[2] };
      if (rest.length === 2) return { page: "runs", entity: rest[0], project: rest[1], query, params };
      return { page: "projects" };
    case "compare":
      if (rest.length !== 2) return { page: "notfound" };
      return { page: "compare", entity: rest[0], project: rest[1], query, params };
    case "launch":
      return {
        page: "launch", jobId: rest[0] === "jobs" ? rest[1] : undefined, fromRun: rest[0] === "clone" ? rest.slice(1) : undefined,
        query, params,
      };
    case "automations":
      return { page: "automations", id: rest[0], query, after: params.getAll("after") };
    case "audit":
      return { page: "audit", query, params };
    case "access":
      return { page: "access" };
    default:
      return { page: "notfound" };
  }
}

function useRoute() {
  const [current, setCurrent] = useState(route());
  useEffect(() => {
    const changed = () => { setCurrent(route()); window.scrollTo(0, 0); };
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return current;
}

function NotFound() {
  useTitle("Not found");
  return html`<main class="pad"><h1>Not found</h1><p><a href="#/">Back to the registry</a></p></main>`;
}

function Page({ r }) {
  switch (r.page) {
    case "registry": return html`<${Registry} model=${r.model} query=${r.query} after=${r.after} />`;
    // Keyed by what they show: another version or artifact starts afresh (its history's toggle unticked, say).
    case "version": return html`<${VersionPage} key=${`${r.model}/${r.version}`} model=${r.model} version=${r.version} tab=${r.tab}
      query=${r.query} params=${r.params} />`;
    case "artifact": return html`<${ArtifactPage} key=${r.id} id=${r.id} tab=${r.tab} query=${r.query} params=${r.params} />`;
    case "run": return html`<${RunPage} entity=${r.entity} project=${r.project} runId=${r.runId} />`;
    // Keyed by project and address, as the audit log: a link with other filters or another page starts from those.
    case "runs": return html`<${ProjectRuns} key=${`${r.entity}/${r.project}?${r.query}`}
      entity=${r.entity} project=${r.project} params=${r.params} />`;
    case "projects": return html`<${Projects} />`;
    // Keyed by its address: a link naming other runs starts afresh from them.
    case "compare": return html`<${ComparePage} key=${`${r.entity}/${r.project}?${r.query}`}
      entity=${r.entity} project=${r.project} params=${r.params} />`;
    // Its jobs list is keyed by the address, as the audit log.
    case "launch": return html`<${Launch} jobId=${r.jobId} fromRun=${r.fromRun} query=${r.query} params=${r.params} />`;
    // The list is keyed by its address, as the audit log: a link to another page of it starts from that page.
    case "automations": return r.id
      ? html`<${OneAutomation} key=${r.id} id=${r.id} />`
      : html`<${Automations} key=${r.query} after=${r.after} />`;
    // Keyed by its address: a link to the audit log with other filters (or none) starts from those.
    case "audit": return html`<${AuditLog} key=${r.query} params=${r.params} />`;
    case "access": return html`<${Access} />`;
    default: return html`<${NotFound} />`;
  }
}

function App() {
  const r = useRoute();
  const [viewer, setViewer] = useState(null);
  const [checking, setChecking] = useState(Boolean(apiKey.get()));
  const [refused, setRefused] = useState(null);
  const [unanswered, setUnanswered] = useState(false);
  const recheck = useRef(() => {});

  useEffect(() => {
    const refuse = (e) => { apiKey.clear(); setViewer(null); setRefused(e.detail); };
    window.addEventListener("modelreg:unauthorized", refuse);
    // A server that does not answer says nothing of the key: asked again until it does (the login page, shown
    // instead, asked for a key the browser still had).
    let retry = null;
    const check = () => gql(VIEWER).then(
      (d) => { setViewer(d.viewer); setChecking(false); },
      (error) => {
        if (!(error instanceof Unreachable)) { setChecking(false); return; }
        setUnanswered(true);
        retry = setTimeout(check, 3000);
      },
    );
    recheck.current = () => { clearTimeout(retry); check(); };
    if (apiKey.get()) check();
    return () => { clearTimeout(retry); window.removeEventListener("modelreg:unauthorized", refuse); };
  }, []);

  if (checking && unanswered) return html`<div class="pad"><${Unanswered} retry=${() => recheck.current()} /></div>`;
  if (checking) return html`<p class="muted pad">Checking your API key…</p>`;
  if (!viewer) return html`<${Login} refused=${refused} onLogin=${(v) => { setRefused(null); setViewer(v); }} />`;

  const section = ["version", "artifact"].includes(r.page) ? "registry" : ["run", "projects", "compare"].includes(r.page) ? "runs" : r.page;
  const nav = [["registry", "#/", "Registry"], ["runs", "#/runs", "Runs"], ["launch", "#/launch", "Launch"], ["automations", "#/automations", "Automations"], ["audit", "#/audit", "Audit log"]];
  // Keys and grants are managed by installation admins; anyone else finds their own access at #/access.
  if (isAdmin(viewer)) nav.push(["access", "#/access", "Access"]);
  return html`
    <header class="top">
      <a class="brand" href="#/">modelreg</a>
      <nav>${nav.map(([id, link, label]) => html`<a href=${link} class=${section === id ? "active" : ""}>${label}</a>`)}</nav>
      <span class="spacer"></span>
      <a href="/graphql" class="muted" target="_blank" rel="noopener">GraphiQL</a>
      <a class="viewer" href="#/access" data-testid="viewer" title=${"your keys and grants: " + JSON.stringify(viewer.grants)}>${viewer.id} <span class="badge">${shown(viewer.role)}</span></a>
      <button class="link" onClick=${() => { apiKey.clear(); setViewer(null); }}>Log out</button>
    </header>
    <${ViewerContext.Provider} value=${viewer}><${Page} r=${r} /><//>`;
}

const root = document.getElementById("app");
root.textContent = ""; // the "Loading" placeholder: Preact 11 renders next to what is there
render(html`<${App} />`, root);
