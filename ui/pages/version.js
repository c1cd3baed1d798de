// One version of a registered model: Overview (the model card), Metadata, Files, Usage, Lineage, Action history.
// Members and admins of the model may set, move and remove aliases and edit the model card; protected
// aliases only its admins. What the role may not do is not offered (the server checks again).
import { useState } from "preact/hooks";
import { downloadBlob, useMutation, useQuery, useLive } from "../api.js";
import { useViewer, may, modelScopes } from "../access.js";
import { html, href, Loaded, AliasBadges, Badge, Time, Markdown, KeyValues, Tabs, bytes, runHref, ErrorBox } from "../html.js";
import { LineageTab } from "./lineage_tab.js";

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
    history(limit: 500) { eventId action actor occurredAt details }
  }
}`;

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

const ADD_ALIAS = `mutation AddAlias($model: String!, $id: ID!, $alias: String!) {
  addAlias(registeredModel: $model, artifactVersionId: $id, alias: $alias) { version aliases }
}`;
const REMOVE_ALIAS = `mutation RemoveAlias($model: String!, $alias: String!) {
  removeAlias(registeredModel: $model, alias: $alias) { version aliases }
}`;
const UPDATE_CARD = `mutation UpdateCard($model: String!, $description: String!, $inputs: String, $outputs: String) {
  updateModelCard(registeredModel: $model, description: $description, inputs: $inputs, outputs: $outputs) { name }
}`;

// Set or move an alias to this version, or remove one of its aliases. `admin`: protected aliases too.
function AliasControls({ model, v, admin, reload }) {
  const [alias, setAlias] = useState("");
  const [state, run] = useMutation(reload);
  const isProtected = (a) => model.protectedAliases.includes(a);
  const refused = alias && isProtected(alias.trim()) && !admin;
  const submit = async (e) => {
    e.preventDefault();
    if (await run(ADD_ALIAS, { model: model.name, id: v.artifactVersion.id, alias: alias.trim() })) setAlias("");
  };
  const offered = model.protectedAliases.filter((a) => admin && !v.aliases.includes(a));
  return html`
    <form class="inline" data-testid="alias-form" onSubmit=${submit}>
      <label>Set or move alias <input name="alias" list="alias-suggestions" aria-label="Alias name" required value=${alias} onInput=${(e) => setAlias(e.target.value)} /></label>
      <datalist id="alias-suggestions">${offered.map((a) => html`<option value=${a} />`)}</datalist>
      <button type="submit" disabled=${state.busy || !alias.trim() || refused}>Move here</button>
      ${refused && html`<span class="muted"> ${alias.trim()} is protected: only the model's admins may move it</span>`}
    </form>
    <ul class="alias-list" data-testid="alias-remove">
      ${v.aliases.filter((a) => admin || !isProtected(a)).map((a) => html`<li>
        <${Badge} kind=${isProtected(a) ? "alias protected" : "alias"}>${a}<//>
        <button class="link" aria-label=${"remove alias " + a} disabled=${state.busy}
          onClick=${() => run(REMOVE_ALIAS, { model: model.name, alias: a })}>remove</button></li>`)}
    </ul>
    ${state.error && html`<${ErrorBox} error=${state.error} />`}`;
}

function CardEditor({ model, reload, close }) {
  const [fields, setFields] = useState({ description: model.description || "", inputs: model.inputs || "", outputs: model.outputs || "" });
  const [state, run] = useMutation(reload);
  const field = (name, label, rows) => html`<label>${label}
    <textarea name=${name} rows=${rows} value=${fields[name]} onInput=${(e) => setFields({ ...fields, [name]: e.target.value })}></textarea></label>`;
  const submit = async (e) => {
    e.preventDefault();
    if (await run(UPDATE_CARD, { model: model.name, ...fields })) close();
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
        <table class="kv"><tbody>
          <tr><th>Aliases</th><td data-testid="aliases"><${AliasBadges} aliases=${v.aliases} protectedAliases=${model.protectedAliases} />${!v.aliases.length && html`<span class="muted">none</span>`}</td></tr>
          <tr><th>Model tags</th><td>${model.tags.map((t) => html`<${Badge} kind="tag">${t}<//> `)}${!model.tags.length && html`<span class="muted">none</span>`}</td></tr>
          <tr><th>Linked</th><td>by ${v.linkedBy}, <${Time} at=${v.linkedAt} /></td></tr>
          ${av && html`
            <tr><th>Source artifact</th><td><code>${av.entity}/${av.project}/${av.name}:${av.version}</code> (${av.type})</td></tr>
            <tr><th>Artifact tags</th><td>${av.tags.map((t) => html`<${Badge} kind="tag">${t}<//> `)}${!av.tags.length && html`<span class="muted">none</span>`}</td></tr>
            <tr><th>Logged</th><td>by ${av.createdBy}, <${Time} at=${av.createdAt} /></td></tr>
            <tr><th>Produced by</th><td>${av.loggedByRun ? html`<a href=${runHref(av.entity, av.project, av.loggedByRun)}>run ${av.loggedByRun}</a>` : html`<span class="muted">no run</span>`}</td></tr>
            <tr><th>Digest</th><td><code class="digest">${av.digest}</code></td></tr>`}
        </tbody></table>
        ${av?.description && html`<h3>Artifact description</h3><${Markdown} text=${av.description} />`}
        ${member && av && html`<h3>Aliases of this version</h3><${AliasControls} model=${model} v=${v} admin=${admin} reload=${reload} />`}
      </section>
    </div>`;
}

export function Files({ files }) {
  if (!files.length) return html`<p class="muted">No files.</p>`;
  const total = files.reduce((n, f) => n + Number(f.size), 0);
  return html`
    <table class="grid" data-testid="files">
      <thead><tr><th>Path</th><th>Size</th><th>Digest</th><th>Stored</th></tr></thead>
      <tbody>${files.map((f) => html`<tr>
        <td><code>${f.path}</code></td><td>${bytes(f.size)}</td><td><code class="digest">${f.digest}</code></td>
        <td>${f.ref ? html`reference: <code>${f.ref}</code>` : html`<button class="link" onClick=${() => downloadBlob(f.digest, f.path).catch((e) => alert(e.message))}>download</button>`}</td></tr>`)}</tbody>
      <tfoot><tr><th>${files.length} files</th><th>${bytes(total)}</th><th></th><th></th></tr></tfoot>
    </table>`;
}

export function Usage({ usage }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => { await navigator.clipboard?.writeText(usage); setCopied(true); };
  return html`
    <p>Pulls this exact version (by its immutable <code>vN</code>, never by a moving alias):</p>
    <pre class="code" data-testid="usage">${usage}</pre>
    <button onClick=${copy}>${copied ? "Copied" : "Copy"}</button>`;
}

function History({ records, av }) {
  // The registered model's stream, narrowed to this version (card and tag changes concern every version).
  const [all, setAll] = useState(false);
  const mine = records.filter((r) => r.details.artifact_version_id === av?.id);
  const shown = all ? records : mine;
  return html`
    <label class="toggle"><input type="checkbox" checked=${all} onChange=${(e) => setAll(e.target.checked)} /> every action on the model</label>
    <table class="grid" data-testid="history">
      <thead><tr><th>When</th><th>Who</th><th>What</th><th>Event</th></tr></thead>
      <tbody>${shown.map((r) => html`<tr>
        <td><${Time} at=${r.occurredAt} exact /></td><td class="actor">${r.actor}</td><td>${describe(r)}</td>
        <td><code class="muted" title=${JSON.stringify(r.details)}>${r.action}</code></td></tr>`)}</tbody>
    </table>
    ${!shown.length && html`<p class="muted">No action recorded.</p>`}`;
}

export function VersionPage({ model, version, tab }) {
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
    else if (tab === "metadata") body = html`<${KeyValues} value=${av.metadata} empty="No metadata." />`;
    else if (tab === "files") body = html`<${Files} files=${av.files} />`;
    else if (tab === "usage") body = html`<${Usage} usage=${v.usage} />`;
    else if (tab === "lineage") body = html`<${LineageTab} start=${av.id} />`;
    else if (tab === "history") body = html`<${History} records=${m.history} av=${av} />`;
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
