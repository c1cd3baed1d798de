// One version of a registered model: Overview (the model card), Metadata, Files, Usage, Lineage, Action history.
// Members and admins of the model may set, move and remove aliases, tag, unlink and edit the model card;
// protected aliases only its admins. What the role may not do is not offered (the server checks again).
import { useState } from "preact/hooks";
import { useMutation, useQuery, useLive } from "../api.js";
import { useViewer, may, modelScopes, entityScopes } from "../access.js";
import { Pager, useCursorPages } from "../components/pager.js";
import {
  html, href, Loaded, AliasBadges, Badge, Time, RecordedOffline, Markdown, Tabs, runHref, ErrorBox, useTitle,
} from "../html.js";
import { ArtifactOrigin, Fact, Facts, KeyValues } from "../components/facts.js";
import { Usage } from "../components/usage.js";
import { LineageTab } from "./lineage_tab.js";
import { Files } from "./files.js";
import { AliasControls, ModelTags, VersionTags, UnlinkVersion } from "./model_controls.js";

const VERSION = `query Version($model: String!, $version: String!) {
  registeredModel(name: $model) {
    name description inputs outputs tags protectedAliases
    version(name: $version) {
      version aliases linkedBy linkedAt usage
      artifactVersion {
        id entity project name type version digest description metadata tags createdAt createdBy loggedByRun
        files { path size digest ref }
      }
    }
  }
}`;

// The version's own actions, or with `all` every action on the model (card and tag changes concern every version).
const HISTORY = `query History($model: String!, $version: ID, $first: Int!, $after: String) {
  registeredModel(name: $model) {
    history(artifactVersionId: $version, first: $first, after: $after) {
      items { eventId action actor occurredAt recordedOfflineAt details } endCursor hasNextPage
    }
  }
}`;

export const HISTORY_PAGE_SIZE = 50;

const TABS = [
  ["overview", "Overview"],
  ["metadata", "Metadata"],
  ["files", "Files"],
  ["usage", "Usage"],
  ["lineage", "Lineage"],
  ["history", "Action history"],
];

// What an action on the registered model's stream did, in words.
export function describe(record) {
  const d = record.details;
  switch (record.action) {
    case "registry.version_linked": return "linked the version";
    case "registry.version_unlinked": return "unlinked the version";
    case "registry.alias_added": return html`set alias <${Badge} kind="alias">${d.alias}<//>`;
    case "registry.alias_removed": return html`removed alias <${Badge} kind="alias">${d.alias}<//>`;
    case "registry.model_card_changed": return "changed the model card";
    case "registry.model_tagged": return html`tagged the model <${Badge} kind="tag">${d.tag}<//>`;
    case "registry.model_untagged": return html`removed the tag <${Badge} kind="tag">${d.tag}<//>`;
    case "registry.alias_protected": return html`protected alias <${Badge} kind="alias">${d.alias}<//>`;
    case "registry.alias_unprotected": return html`unprotected alias <${Badge} kind="alias">${d.alias}<//>`;
    default: return record.action;
  }
}

const UPDATE_CARD = `mutation UpdateCard($input: UpdateModelCardInput!) { updateModelCard(input: $input) { name } }`;

function CardEditor({ model, reload, close }) {
  // What the edit starts from: saved over a card changed meanwhile (a colleague's edit), the server refuses it.
  const [editedFrom] = useState({ description: model.description || "", inputs: model.inputs || "", outputs: model.outputs || "" });
  const [fields, setFields] = useState(editedFrom);
  const [state, run] = useMutation(reload);
  const field = (name, label, rows) => html`<label>${label}
    <textarea name=${name} rows=${rows} value=${fields[name]} onInput=${(e) => setFields({ ...fields, [name]: e.target.value })}></textarea></label>`;
  const submit = async (e) => {
    e.preventDefault();
    if (await run(UPDATE_CARD, { input: { registeredModel: model.name, ...fields, editedFrom } })) close();
  };
  return html`
    <form class="stack" data-testid="card-form" onSubmit=${submit}>
      ${field("description", "Description (markdown)", 10)}
      ${field("inputs", "Inputs", 2)}
      ${field("outputs", "Outputs", 2)}
      <p><button type="submit" disabled=${state.busy}>Save the model card</button>
        <button type="button" class="link" onClick=${close}>Cancel</button></p>
      ${state.error && html`<${ErrorBox} error=${state.error} />`}
    </form>`;
}

function Overview({ model, v, reload }) {
  const av = v.artifactVersion;
  const viewer = useViewer();
  const scopes = modelScopes(model.name);
  const member = may(viewer, "member", scopes);
  const admin = may(viewer, "admin", scopes);
  const [editing, setEditing] = useState(false);
  return html`
    <div class="columns">
      <section class="card" data-testid="model-card">
        <h2>Model card ${member && !editing && html`<button class="link" onClick=${() => setEditing(true)}>Edit</button>`}</h2>
        ${editing ? html`<${CardEditor} model=${model} reload=${reload} close=${() => setEditing(false)} />` : html`
          <${Markdown} text=${model.description} empty="No model card yet." />
          <h3>Inputs</h3>
          <${Markdown} text=${model.inputs} empty="Not described." />
          <h3>Outputs</h3>
          <${Markdown} text=${model.outputs} empty="Not described." />`}
      </section>
      <section class="facts">
        <h2>This version</h2>
        <${Facts}>
          <${Fact} label="Aliases" testid="aliases"><${AliasBadges} aliases=${v.aliases} protectedAliases=${model.protectedAliases} />${!v.aliases.length && html`<span class="muted">none</span>`}<//>
          <${Fact} label="Model tags"><${ModelTags} model=${model} editable=${member} reload=${reload} /><//>
          <${Fact} label="Linked">by ${v.linkedBy}, <${Time} at=${v.linkedAt} /><//>
          ${av && html`
            <${Fact} label="Source artifact"><code>${av.entity}/${av.project}/${av.name}:${av.version}</code> (${av.type})<//>
            <${Fact} label="Version tags"><${VersionTags} av=${av} editable=${may(viewer, "member", entityScopes(av.entity))} reload=${reload} /><//>
            <${ArtifactOrigin} av=${av} />`}
        <//>
        ${av?.description && html`<h3>Artifact description</h3><${Markdown} text=${av.description} />`}
        ${member && av && html`<h3>Aliases of this version</h3><${AliasControls} model=${model} v=${v} admin=${admin} reload=${reload} />
          <h3>Unlink</h3><${UnlinkVersion} model=${model} v=${v} admin=${admin} />`}
      </section>
    </div>`;
}

const RUN_CONFIG = `query Hyperparameters($entity: String!, $project: String!, $runId: String!) {
  run(entity: $entity, project: $project, runId: $runId) { config summary }
}`;

function Hyperparameters({ av }) {
  const run = useQuery(RUN_CONFIG, { entity: av.entity, project: av.project, runId: av.loggedByRun });
  return html`<section data-testid="hyperparameters">
    <h2>Hyperparameters <span class="muted">of <a href=${runHref(av.entity, av.project, av.loggedByRun)}>run ${av.loggedByRun}</a></span></h2>
    <${Loaded} result=${run}>${({ run: r }) => r ? html`<${KeyValues} value=${r.config} empty="No config." />
      <h3>Results</h3><${KeyValues} value=${r.summary} empty="No summary." />` : html`<p class="muted">The run is not visible yet.</p>`}<//>
  </section>`;
}

// The version's own metadata, and the hyperparameters and results of the run that produced it.
function Metadata({ av }) {
  return html`<div class="columns">
    <section><h2>Metadata</h2><${KeyValues} value=${av.metadata} empty="No metadata." /></section>
    ${av.loggedByRun && html`<${Hyperparameters} av=${av} />`}
  </div>`;
}

// Keyed by `all`: either list starts on its first page.
function HistoryPages({ model, av, all }) {
  const pages = useCursorPages();
  const result = useQuery(HISTORY, { model, version: all ? null : av.id, first: HISTORY_PAGE_SIZE, after: pages.after });
  useLive({ registeredModel: model }, result.reload);
  return html`<${Loaded} result=${result}>${({ registeredModel: m }) => {
    if (!m) return html`<p class="muted">No registered model named ${model}.</p>`;
    const shown = m.history.items;
    return html`<table class="grid" data-testid="history">
      <thead><tr><th>When</th><th>Who</th><th>What</th><th>Event</th></tr></thead>
      <tbody>${shown.map((r) => html`<tr>
        <td><${Time} at=${r.occurredAt} exact /><${RecordedOffline} at=${r.recordedOfflineAt} /></td><td class="actor">${r.actor}</td><td>${describe(r)}</td>
        <td><code class="muted" title=${JSON.stringify(r.details)}>${r.action}</code></td></tr>`)}</tbody>
    </table>
    ${!shown.length && html`<p class="muted">No action recorded.</p>`}
    ${(pages.number > 1 || m.history.hasNextPage) && html`<${Pager} pages=${pages} page=${m.history} stale=${result.stale} previous="← Newer" next="Older →" />`}`;
  }}<//>`;
}

// Who did what to this version (the registered model's actions on it), or to the whole model, newest first.
function History({ model, av }) {
  const [all, setAll] = useState(false);
  return html`
    <label class="toggle"><input type="checkbox" checked=${all} onChange=${(e) => setAll(e.target.checked)} /> every action on the model</label>
    <${HistoryPages} key=${all ? "all" : "mine"} model=${model} av=${av} all=${all} />`;
}

export function VersionPage({ model, version, tab, query, params }) {
  useTitle(`${model} ${version}`);
  const result = useQuery(VERSION, { model, version });
  useLive({ registeredModel: model }, result.reload);
  return html`<main class="pad"><${Loaded} result=${result}>${(data) => {
    const m = data.registeredModel;
    const v = m?.version;
    if (!v) return html`<p class="muted">${model} has no version ${version}. <a href=${href("models", model)}>Its versions</a></p>`;
    const av = v.artifactVersion;
    let body;
    if (!av) body = html`<p class="muted">The artifact version behind it is not visible yet.</p>`;
    else if (tab === "overview") body = html`<${Overview} model=${m} v=${v} reload=${result.reload} />`;
    else if (tab === "metadata") body = html`<${Metadata} av=${av} />`;
    else if (tab === "files") body = html`<${Files} key=${av.id} files=${av.files} />`;
    else if (tab === "usage") body = html`<${Usage} usage=${v.usage} />`;
    else if (tab === "lineage") body = html`<${LineageTab} key=${query} start=${av.id} path=${href("models", model, version, "lineage")}
      params=${params} />`;
    else if (tab === "history") body = html`<${History} model=${m.name} av=${av} />`;
    else body = html`<p class="muted">No tab named ${tab}.</p>`;
    return html`
      <p class="crumbs"><a href="#/">Registry</a> / <a href=${href("models", m.name)}>${m.name}</a> / ${v.version}</p>
      <header class="page-head">
        <h1>${m.name} <span class="muted">${v.version}</span> <${AliasBadges} aliases=${v.aliases} protectedAliases=${m.protectedAliases} /></h1>
      </header>
      <${Tabs} tabs=${TABS} current=${tab} link=${(id) => href("models", m.name, v.version, id)} />
      <section class="tab-body" data-testid=${"tab-" + tab}>${body}</section>`;
  }}<//></main>`;
}
