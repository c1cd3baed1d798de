// What members and admins may change from the registry's pages: aliases, tags, links, protected aliases.
// Each control is offered only to a role that may use it (the pages decide, with ui/access.js); the
// server checks again, and its refusal is shown next to the control that was refused.
import { useState } from "preact/hooks";
import { gql, useMutation } from "../api.js";
import { html, href, Badge, ErrorBox, FirstFew, naturally } from "../html.js";

const ADD_ALIAS = `mutation AddAlias($model: String!, $id: ID!, $alias: String!) {
  addAlias(input: { registeredModel: $model, artifactVersionId: $id, alias: $alias }) { version aliases }
}`;
const REMOVE_ALIAS = `mutation RemoveAlias($model: String!, $alias: String!) {
  removeAlias(input: { registeredModel: $model, alias: $alias }) { version aliases }
}`;
const LINK = `mutation Link($model: String!, $id: ID!, $aliases: [String!]) {
  linkArtifactVersion(input: { registeredModel: $model, artifactVersionId: $id, aliases: $aliases }) { registeredModel version }
}`;
const UNLINK = `mutation Unlink($model: String!, $id: ID!) {
  unlinkArtifactVersion(input: { registeredModel: $model, artifactVersionId: $id }) { name }
}`;
const FIND_VERSION = `query Find($ref: String!) { artifactVersion(ref: $ref) { id } }`;
const MODEL_NAMES = `query Names($search: String) { registeredModels(search: $search, first: 20) { items { name } } }`;
const TAG_MODEL = `mutation($model: String!, $tag: String!) { tagRegisteredModel(input: { registeredModel: $model, tag: $tag }) { name } }`;
const UNTAG_MODEL = `mutation($model: String!, $tag: String!) { untagRegisteredModel(input: { registeredModel: $model, tag: $tag }) { name } }`;
const TAG_VERSION = `mutation($ref: String!, $tag: String!) { tagArtifactVersion(input: { ref: $ref, tag: $tag }) { id } }`;
const UNTAG_VERSION = `mutation($ref: String!, $tag: String!) { untagArtifactVersion(input: { ref: $ref, tag: $tag }) { id } }`;
const PROTECT = `mutation($model: String!, $alias: String!) { protectAlias(input: { registeredModel: $model, alias: $alias }) { name } }`;
const UNPROTECT = `mutation($model: String!, $alias: String!) { unprotectAlias(input: { registeredModel: $model, alias: $alias }) { name } }`;

// "a, b ,c" -> ["a", "b", "c"]
function names(text) {
  return text.split(",").map((s) => s.trim()).filter(Boolean);
}

// One text box and a button: the shape of most controls here.
function OneField({ label, button, placeholder, busy, onSubmit, testid, list, compact = false }) {
  const [value, setValue] = useState("");
  const submit = async (e) => {
    e.preventDefault();
    if (await onSubmit(value.trim())) setValue("");
  };
  return html`<form class="inline" data-testid=${testid} onSubmit=${submit}>
    <label><span class=${compact ? "visually-hidden" : ""}>${label}</span> <input aria-label=${label} required placeholder=${placeholder} list=${list} value=${value} onInput=${(e) => setValue(e.target.value)} /></label>
    <button type="submit" disabled=${busy || !value.trim()}>${button}</button>
  </form>`;
}

// Set or move an alias to this version, or remove one of its aliases. `admin`: protected aliases too.
export function AliasControls({ model, v, admin, reload }) {
  const [alias, setAlias] = useState("");
  const [state, run] = useMutation(reload);
  const isProtected = (a) => model.protectedAliases.includes(a);
  const refused = alias && isProtected(alias.trim()) && !admin;
  // A protected alias is what deployments and automations follow (production): an admin's slip moved it at once.
  const sure = (doing, a) => !isProtected(a)
    || window.confirm(`${doing} the protected alias ${a} ${doing === "Move" ? "to" : "from"} ${v.version}? `
      + `What follows ${model.name}:${a} (deployments, automations) follows the change.`);
  const submit = async (e) => {
    e.preventDefault();
    const name = alias.trim();
    if (!sure("Move", name)) return;
    if (await run(ADD_ALIAS, { model: model.name, id: v.artifactVersion.id, alias: name })) setAlias("");
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
          onClick=${() => sure("Remove", a) && run(REMOVE_ALIAS, { model: model.name, alias: a })}>remove</button></li>`)}
    </ul>
    ${state.error && html`<${ErrorBox} error=${state.error} />`}`;
}

const SHOWN_TAGS = 20; // before "+N more": a hundred tags pushed the page's versions out of sight

// Tags as badges, in natural order; `editable`: each with a remove button, and a box to add one. `subject` names what
// is tagged, for the controls' accessible names ("remove tag vision from the model"). A removal (one click, no
// question asked) can be undone from the note it leaves.
function TagEditor({ tags, editable, subject, testid, add, remove, variables, reload }) {
  const [state, run] = useMutation(reload);
  const [removed, setRemoved] = useState(null);
  const untag = async (t) => { if (await run(remove, variables(t))) setRemoved(t); };
  const undo = async () => { if (await run(add, variables(removed))) setRemoved(null); };
  const badge = (t) => html`<${Badge} kind="tag">${t}${editable && html`
    <button class="link small" aria-label=${`remove tag ${t} from ${subject}`} disabled=${state.busy}
      onClick=${() => untag(t)}>×</button>`}<//> `;
  return html`<div class="tags" data-testid=${testid}>
    <${FirstFew} items=${naturally(tags)} few=${SHOWN_TAGS} each=${badge} />
    ${!tags.length && html`<span class="muted">none</span>`}
    ${removed && html`<span class="muted" role="status" data-testid="tag-removed">Removed tag ${removed}.
      <button class="link" disabled=${state.busy} onClick=${undo}>Undo</button></span>`}
    ${editable && html`<${OneField} label=${"Tag " + subject} button="Add tag" placeholder="new tag" compact busy=${state.busy}
      onSubmit=${(tag) => run(add, variables(tag))} />`}
    ${state.error && html`<${ErrorBox} error=${state.error} />`}
  </div>`;
}

export function ModelTags({ model, editable, reload }) {
  return html`<${TagEditor} tags=${model.tags} editable=${editable} subject="the model" testid="model-tags"
    add=${TAG_MODEL} remove=${UNTAG_MODEL} variables=${(tag) => ({ model: model.name, tag })} reload=${reload} />`;
}

export function VersionTags({ av, editable, reload }) {
  const ref = `${av.entity}/${av.project}/${av.name}:${av.version}`;
  return html`<${TagEditor} tags=${av.tags} editable=${editable} subject="this version" testid="version-tags"
    add=${TAG_VERSION} remove=${UNTAG_VERSION} variables=${(tag) => ({ ref, tag })} reload=${reload} />`;
}

// Removing a version from the model keeps its number unused and its history; the artifact stays.
// A version that holds a protected alias may be unlinked by the model's admins only.
export function UnlinkVersion({ model, v, admin }) {
  const [state, run] = useMutation(() => { location.hash = href("models", model.name).slice(1); });
  const holds = v.aliases.filter((a) => model.protectedAliases.includes(a));
  if (holds.length && !admin) {
    return html`<p class="muted" data-testid="unlink">It holds the protected alias ${holds.join(", ")}: only the model's admins may unlink it.</p>`;
  }
  const unlink = () => {
    const lose = v.aliases.length ? ` Its aliases (${v.aliases.join(", ")}) go with it.` : "";
    if (window.confirm(`Unlink ${v.version} from ${model.name}?${lose} The artifact itself stays.`)) {
      run(UNLINK, { model: model.name, id: v.artifactVersion.id });
    }
  };
  return html`<p data-testid="unlink"><button class="danger" disabled=${state.busy} onClick=${unlink}>Unlink ${v.version} from ${model.name}</button></p>
    ${state.error && html`<${ErrorBox} error=${state.error} />`}`;
}

// Link an artifact version to a registered model (a new model is registered by its first link), with
// aliases to set on it; then open the linked version's page.
export function LinkForm({ artifactId, model = "", askArtifact = false }) {
  const [fields, setFields] = useState({ model, artifact: "", aliases: "" });
  const [suggestions, setSuggestions] = useState([]);
  const [state, run] = useMutation((data) => {
    const linked = data.linkArtifactVersion;
    location.hash = href("models", linked.registeredModel, linked.version).slice(1);
  });
  const [finding, setFinding] = useState(null);
  const set = (name) => (e) => setFields({ ...fields, [name]: e.target.value });
  const suggest = (e) => {
    set("model")(e);
    gql(MODEL_NAMES, { search: e.target.value || null }).then((d) => setSuggestions(d.registeredModels.items.map((m) => m.name)), () => {});
  };
  const submit = async (e) => {
    e.preventDefault();
    let id = artifactId;
    setFinding(null);
    if (askArtifact) {
      const found = await gql(FIND_VERSION, { ref: fields.artifact.trim() }).catch((error) => { setFinding(error); return null; });
      if (!found) return;
      if (!found.artifactVersion) { setFinding(new Error(`no artifact version ${fields.artifact.trim()} (entity/project/name:vN)`)); return; }
      id = found.artifactVersion.id;
    }
    run(LINK, { model: fields.model.trim(), id, aliases: names(fields.aliases) });
  };
  return html`<form class="stack" data-testid="link-form" onSubmit=${submit}>
    ${askArtifact && html`<label>Artifact version <input aria-label="Artifact version" required placeholder="entity/project/name:v3"
      value=${fields.artifact} onInput=${set("artifact")} /></label>`}
    ${!model && html`<label>Registered model <input aria-label="Registered model" required list="model-names" placeholder="an existing or a new name"
      value=${fields.model} onInput=${suggest} onFocus=${suggest} /></label>
      <datalist id="model-names">${suggestions.map((n) => html`<option value=${n} />`)}</datalist>`}
    <label>Aliases <input aria-label="Aliases to set" placeholder="staging, candidate (optional)" value=${fields.aliases} onInput=${set("aliases")} /></label>
    <p><button type="submit" disabled=${state.busy}>Link to ${fields.model.trim() || "the registry"}</button></p>
    ${(finding || state.error) && html`<${ErrorBox} error=${finding || state.error} />`}
  </form>`;
}

// Admins of a model choose which aliases only admins may set or remove (production, say).
export function ProtectedAliases({ model, reload }) {
  const [state, run] = useMutation(reload);
  return html`<div data-testid="protected-aliases">
    <ul class="alias-list">${model.protectedAliases.map((a) => html`<li><${Badge} kind="alias protected">${a}<//>
      <button class="link" aria-label=${"unprotect alias " + a} disabled=${state.busy} onClick=${() => run(UNPROTECT, { model: model.name, alias: a })}>unprotect</button></li>`)}
    </ul>
    ${!model.protectedAliases.length && html`<p class="muted">No protected alias: members may move every alias.</p>`}
    <${OneField} label="Protect alias" button="Protect" placeholder="production" busy=${state.busy}
      onSubmit=${(alias) => run(PROTECT, { model: model.name, alias })} />
    ${state.error && html`<${ErrorBox} error=${state.error} />`}
  </div>`;
}
