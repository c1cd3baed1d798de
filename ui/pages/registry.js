// Registry: a searchable sidebar of registered models, and the selected model's versions, a page at a time.
import { useEffect, useState } from "preact/hooks";
import { useQuery, useLive } from "../api.js";
import { html, href, Loaded, AliasBadges, Badge, FirstFew, Time, naturally, runHref, useTitle } from "../html.js";
import { useViewer, may, modelScopes } from "../access.js";
import { ModelTags, ProtectedAliases, LinkForm } from "./model_controls.js";
import { Pager, useCursorPages, useKeptInAddress } from "../components/pager.js";
import { MOST_COMPARED, compareHref } from "./compare.js";

const MODELS = `query Models($search: String, $after: String) {
  registeredModels(search: $search, first: 50, after: $after) { items { name tags } endCursor hasNextPage }
}`;

// Newest first, as W&B lists them; `latest` is computed (the newest linked), held by no version's aliases.
const VERSIONS = `query Versions($name: String!, $first: Int!, $after: String) {
  registeredModel(name: $name) {
    name description tags protectedAliases createdAt createdBy versionCount
    latest: alias(name: "latest") { version }
    versions(first: $first, after: $after, newestFirst: true) {
      items {
        version aliases linkedBy linkedAt
        artifactVersion { id entity project name version type loggedByRun }
      }
      endCursor hasNextPage
    }
  }
}`;

export const PAGE_SIZE = 20;
const SIDEBAR_TAGS = 3; // a model's tags the sidebar shows before "+N more", so that the models stay in sight

function Sidebar({ selected }) {
  const [search, setSearch] = useState("");
  const [typed, setTyped] = useState("");
  const [after, setAfter] = useState(null);
  const [shown, setShown] = useState([]);
  useEffect(() => {
    const t = setTimeout(() => { setSearch(typed); setAfter(null); }, 250);
    return () => clearTimeout(t);
  }, [typed]);
  const models = useQuery(MODELS, { search: search || null, after });
  const live = useLive({ streamPrefix: "registered_model:", types: ["registry.version_linked", "registry.model_tagged", "registry.model_untagged"] }, models.reload);
  useEffect(() => {
    if (!models.data) return;
    const got = models.data.registeredModels.items;
    setShown((before) => (after ? [...before, ...got.filter((m) => !before.some((b) => b.name === m.name))] : got));
  }, [models.data]);
  const page = models.data?.registeredModels;
  return html`
    <aside class="sidebar">
      <input type="search" placeholder="Search models" aria-label="Search registered models" value=${typed}
             onInput=${(e) => setTyped(e.target.value)} />
      <${Loaded} result=${models}>${() => html`
        <ul class="models" data-testid="model-list">
          ${shown.map((m) => html`<li class=${m.name === selected ? "active" : ""}>
            <a href=${href("models", m.name)}>${m.name}</a>
            ${" "}<${FirstFew} items=${naturally(m.tags)} few=${SIDEBAR_TAGS} testid="more-tags"
              each=${(t) => html`<${Badge} kind="tag">${t}<//> `} />
          </li>`)}
        </ul>
        ${!shown.length && html`<p class="muted">${search ? "No model matches." : "No registered model yet."}</p>`}
        ${page.hasNextPage && html`<button class="link" onClick=${() => setAfter(page.endCursor)}>More…</button>`}
      `}<//>
      <p class="live muted" title="live updates over the events subscription">● ${live}</p>
    </aside>`;
}

// The model's settings, as far as the caller's role goes: tags (members), linking a version by its
// reference (members), protected aliases (admins). Folded away, so the versions table stays on top.
function ModelSettings({ model, reload }) {
  const viewer = useViewer();
  const scopes = modelScopes(model.name);
  if (!may(viewer, "member", scopes)) return null;
  return html`<details class="settings" data-testid="model-settings">
    <summary>Manage ${model.name}</summary>
    <div class="columns">
      <section><h3>Link a version</h3><${LinkForm} key=${model.name} model=${model.name} askArtifact=${true} /></section>
      ${may(viewer, "admin", scopes) && html`<section><h3>Protected aliases</h3>
        <p class="muted">Only the model's admins may set, move or remove these, or unlink the version holding one.</p>
        <${ProtectedAliases} model=${model} reload=${reload} /></section>`}
    </div>
  </details>`;
}

// What the runs behind the ticked versions are, compared (#/compare): the question the demo asks of a candidate and
// production ("trained alike? evaluated on the same data?"). Runs are compared within one project.
function CompareBar({ picked, clear }) {
  const runs = [...new Set(picked.map((p) => p.runId))];
  const projects = new Set(picked.map((p) => `${p.entity}/${p.project}`));
  const versions = picked.map((p) => p.version).join(", ");
  return html`<p class="toolbar" data-testid="compare-bar">
    ${projects.size > 1
      ? html`<span class="muted">${versions} were trained in ${projects.size} projects: runs are compared within one.</span>`
      : runs.length > 1
        ? html`<a class="button" href=${compareHref(picked[0].entity, picked[0].project, runs)}>Compare the runs behind ${versions}</a>`
        : html`<span class="muted">${picked.length > 1 ? `${versions} came from one run.` : `Tick another version to compare the runs behind them.`}</span>`}
    <button type="button" class="link small" onClick=${clear}>clear</button></p>`;
}

// Keyed by model and address in Registry: the page shown is kept in the address (`#/models/m?after=…`), so Back
// from a version, a reload or a link opens it again.
function Versions({ name, after }) {
  const [picked, setPicked] = useState([]);
  const pick = (v) => setPicked((before) => (before.some((p) => p.version === v.version)
    ? before.filter((p) => p.version !== v.version)
    : [...before, { version: v.version, entity: v.artifactVersion.entity, project: v.artifactVersion.project, runId: v.artifactVersion.loggedByRun }]));
  const pages = useCursorPages(after);
  useKeptInAddress(href("models", name), {}, pages);
  const result = useQuery(VERSIONS, { name, first: PAGE_SIZE, after: pages.after });
  useLive({ registeredModel: name }, result.reload);
  const viewer = useViewer();
  return html`<${Loaded} result=${result}>${(data) => {
    const model = data.registeredModel;
    if (!model) return html`<p class="muted">No registered model named ${name}.</p>`;
    const { items } = model.versions;
    return html`
      <header class="page-head">
        <h1>${model.name}</h1>
        <${ModelTags} model=${model} editable=${may(viewer, "member", modelScopes(model.name))} reload=${result.reload} />
        <p class="muted">Created by ${model.createdBy} <${Time} at=${model.createdAt} /></p>
      </header>
      <${ModelSettings} model=${model} reload=${result.reload} />
      ${picked.length > 0 && html`<${CompareBar} picked=${picked} clear=${() => setPicked([])} />`}
      <table class="grid" data-testid="versions">
        <thead><tr><th><span class="visually-hidden">Compare</span></th><th>Version</th><th>Aliases</th><th>Source artifact</th><th>Project</th><th>Linked by</th><th>Linked</th></tr></thead>
        <tbody>
          ${items.map((v) => {
            const av = v.artifactVersion;
            const ticked = picked.some((p) => p.version === v.version);
            return html`<tr>
              <td>${av?.loggedByRun && html`<input type="checkbox" aria-label=${`compare the run behind ${v.version}`}
                checked=${ticked} disabled=${!ticked && picked.length >= MOST_COMPARED} onChange=${() => pick(v)} />`}</td>
              <td><a href=${href("models", model.name, v.version)}>${v.version}</a></td>
              <td>${v.version === model.latest?.version && html`<span title="computed: the newest version linked"
                data-testid="latest"><${Badge} kind="alias">latest<//></span> `}
                <${AliasBadges} aliases=${v.aliases} protectedAliases=${model.protectedAliases} /></td>
              <td>${av ? html`<code>${av.name}:${av.version}</code> <span class="muted">${av.type}</span>
                ${av.loggedByRun && html` <a class="muted" href=${runHref(av.entity, av.project, av.loggedByRun)}>run ${av.loggedByRun}</a>`}` : html`<span class="muted">not visible yet</span>`}</td>
              <td>${av ? `${av.entity}/${av.project}` : ""}</td>
              <td>${v.linkedBy}</td>
              <td><${Time} at=${v.linkedAt} /></td>
            </tr>`;
          })}
        </tbody>
      </table>
      ${!items.length && html`<p class="muted">No linked version.</p>`}
      <${Pager} pages=${pages} page=${model.versions} stale=${result.stale} testid="versions-page"
        total=${[model.versionCount, "version", "versions"]} />`;
  }}<//>`;
}

export function Registry({ model, query = "", after = [] }) {
  useTitle(model || "Registry");
  return html`
    <div class="with-sidebar">
      <${Sidebar} selected=${model} />
      <main class="pad">
        ${model ? html`<${Versions} key=${`${model}?${query}`} name=${model} after=${after} />` : html`<h1>Registry</h1><p class="muted">Choose a registered model on the left.</p>`}
      </main>
    </div>`;
}
