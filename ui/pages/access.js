// Access: who holds which API keys and roles. Installation admins (an admin key) see every principal and
// issue keys, revoke them, grant and revoke roles on a scope; anyone else sees their own keys and grants,
// and the admins of a scope (a team) who holds a role there, which they grant and take back. The key itself is shown once, when it is issued: the server keeps only its hash.
// Private entities and models are listed here too (the ones the viewer may read), and switched by admins.
import { useState } from "preact/hooks";
import { useLive, useMutation, useQuery } from "../api.js";
import { isAdmin, useViewer } from "../access.js";
import { html, shown, Badge, ErrorBox, Loaded, Time, useTitle, Warnings } from "../html.js";
import { Pager, useCursorPages } from "../components/pager.js";

const PRINCIPAL_FIELDS = `
  id kind role
  keys { id prefix role label issuedAt issuedBy revokedAt revokedBy live expiresAt lastUsedAt }
  grants { scope role grantedAt grantedBy }`;

// A literal page size: the cost limit counts a page by its `first` (graphql/cost.py).
const PRINCIPALS = `query Principals($search: String, $after: String) {
  principals(search: $search, first: 50, after: $after) { items { ${PRINCIPAL_FIELDS} } endCursor hasNextPage }
  registeredModels(first: 100) { items { name } }
}`;
const MINE = `{ viewer { id role keyId access { ${PRINCIPAL_FIELDS} } } }`;

const ISSUE_KEY = `mutation IssueKey($input: IssueApiKeyInput!) {
  issueApiKey(input: $input) { key id principal role grants { scope role } warnings }
}`;
const REVOKE_KEY = `mutation RevokeKey($input: RevokeApiKeyInput!) { revokeApiKey(input: $input) { id live warnings } }`;
const GRANT = `mutation Grant($input: GrantRoleInput!) { grantRole(input: $input) { principal scope role warnings } }`;
const REVOKE_GRANT = `mutation RevokeGrant($input: RevokeRoleInput!) { revokeRole(input: $input) { role } }`;

const ROLES = ["VIEWER", "MEMBER", "ADMIN"];
const roleOptions = () => ROLES.map((r) => html`<option value=${r}>${shown(r)}</option>`);

const PRIVATE_SCOPES = `{ privateScopes(first: 100) { items { scope visibility } hasNextPage } }`;
const SET_VISIBILITY = `mutation SetVisibility($scope: String!, $visibility: Visibility!) {
  setVisibility(input: { scope: $scope, visibility: $visibility }) { scope visibility }
}`;

// Who reads what: public by default; private scopes are read by their grant holders and admin keys only.
function PrivateScopes({ admin }) {
  const result = useQuery(PRIVATE_SCOPES); // not live: the page's one socket follows principals' events
  const [scope, setScope] = useState("");
  const [state, run] = useMutation(result.reload);
  const switchTo = (s, visibility) => run(SET_VISIBILITY, { scope: s, visibility });
  return html`<section class="card" data-testid="private-scopes">
    <h2>Private entities and models</h2>
    <p class="muted">Everything is public by default: every key reads it. A private entity (a team) or registered
      model is read only by principals with a grant on it (viewer is enough) and by admin keys; to anyone else it
      does not exist: not in lists, counts, search, history, live events or files, and a lineage walk shows its
      nodes as <em>private</em> and stops there. A version a private team links into a registered model is read by
      that model's readers (linking it needs viewer on the team). Admins of the scope switch it.</p>
    <${Loaded} result=${result}>${({ privateScopes }) => html`
      ${!privateScopes.items.length && html`<p class="muted">Nothing you may read is private.</p>`}
      <ul class="access-list">${privateScopes.items.map((p) => html`<li data-testid="private-scope">
        <${Badge}>private<//> <code>${p.scope}</code>
        ${admin && html` <button class="link small" disabled=${state.busy} onClick=${() => switchTo(p.scope, "PUBLIC")}
          aria-label=${"make " + p.scope + " public"}>make public</button>`}</li>`)}</ul>`}<//>
    ${admin && html`<form class="inline" data-testid="visibility-form"
        onSubmit=${async (e) => { e.preventDefault(); if (await switchTo(scope.trim(), "PRIVATE")) setScope(""); }}>
      <label>Scope <input required value=${scope} placeholder="entity:<name> or model:<name>" onInput=${(e) => setScope(e.target.value)} /></label>
      <button type="submit" disabled=${state.busy || !scope.trim()}>Make private</button>
    </form>`}
    ${state.error && html`<${ErrorBox} error=${state.error} />`}
  </section>`;
}

// A button that asks before it acts: a revoked key cannot be brought back.
function Confirmed({ label, question, confirm, busy, onConfirm }) {
  const [asking, setAsking] = useState(false);
  if (!asking) return html`<button class="link" aria-label=${label} disabled=${busy} onClick=${() => setAsking(true)}>revoke</button>`;
  return html`<span class="confirm" role="group" aria-label=${label}>${question}
    <button class="danger small" disabled=${busy} onClick=${async () => { await onConfirm(); setAsking(false); }}>${confirm}</button>
    <button class="link small" onClick=${() => setAsking(false)}>cancel</button></span>`;
}

function Keys({ p, mine, keyInUse, reload }) {
  const [state, run] = useMutation(reload);
  // Revoking a principal's last live key says what stays: its grants and automations.
  const [said, setSaid] = useState([]);
  const revoke = async (k) => setSaid((await run(REVOKE_KEY, { input: { keyId: k.id } }))?.revokeApiKey.warnings || []);
  if (!p.keys.length) return html`<span class="muted">no key</span>`;
  return html`<ul class="access-list">${p.keys.map((k) => html`<li class=${k.live ? "" : "revoked"} data-testid="key">
      <code>${k.prefix}…</code> <${Badge}>${shown(k.role)}<//> ${k.label && html`<span>${k.label}</span>`}
      ${k.id === keyInUse && html` <${Badge} kind="in-use">in use<//>`}
      <span class="muted"> issued by ${k.issuedBy} <${Time} at=${k.issuedAt} /></span>
      ${k.live && k.expiresAt && html`<span class="muted"> · expires <${Time} at=${k.expiresAt} /></span>`}
      <span class="muted" data-testid="key-last-used"> · ${k.lastUsedAt ? html`last used <${Time} at=${k.lastUsedAt} />` : "never used"}</span>
      ${k.live
        ? !mine && html` <${Confirmed} label=${`revoke key ${k.prefix}`} busy=${state.busy} confirm="Revoke"
            question=${k.id === keyInUse ? "Revoke the key you are using? You will be logged out." : `Revoke ${k.prefix}…? Requests with it are refused from now on.`}
            onConfirm=${() => revoke(k)} />`
        : k.revokedAt
          ? html`<span class="muted"> · revoked${k.revokedBy ? ` by ${k.revokedBy}` : ""} <${Time} at=${k.revokedAt} /></span>`
          : html`<span class="muted"> · expired <${Time} at=${k.expiresAt} /></span>`}
    </li>`)}</ul>
    <${Warnings} warnings=${said} />
    ${state.error && html`<${ErrorBox} error=${state.error} />`}`;
}

function Grants({ p, mine, reload }) {
  const [state, run] = useMutation(reload);
  if (!p.grants.length) return html`<span class="muted">none: its key's role holds everywhere</span>`;
  return html`<ul class="access-list">${p.grants.map((g) => html`<li data-testid="grant">
      <${Badge}>${shown(g.role)}<//> on <code>${g.scope}</code>
      <span class="muted"> by ${g.grantedBy} <${Time} at=${g.grantedAt} /></span>
      ${!mine && html` <${Confirmed} label=${`revoke ${g.scope} of ${p.id}`} busy=${state.busy} confirm="Revoke"
          question=${`Take ${shown(g.role)} on ${g.scope} from ${p.id}?`} onConfirm=${() => run(REVOKE_GRANT, { input: { principal: p.id, scope: g.scope } })} />`}
    </li>`)}</ul>
    ${state.error && html`<${ErrorBox} error=${state.error} />`}`;
}

function Principals({ principals, mine = false, keyInUse, reload }) {
  return html`<table class="grid" data-testid="principals">
    <thead><tr><th>Principal</th><th>Role</th><th>API keys</th><th>Grants (override the role on a scope)</th></tr></thead>
    <tbody>${principals.map((p) => html`<tr key=${p.id} data-testid="principal" data-principal=${p.id}>
      <td><strong>${p.id}</strong></td>
      <td>${p.role ? html`<${Badge}>${shown(p.role)}<//>` : html`<span class="muted">no live key</span>`}</td>
      <td><${Keys} p=${p} mine=${mine} keyInUse=${keyInUse} reload=${reload} /></td>
      <td><${Grants} p=${p} mine=${mine} reload=${reload} /></td></tr>`)}</tbody>
  </table>`;
}

// The key is in the page's memory only until "Done": nothing else will ever show it again.
function IssuedKey({ issued, done }) {
  const [copied, setCopied] = useState(null);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(issued.key);
      setCopied("Copied");
    } catch {
      setCopied("Select the key and copy it (the browser refused the clipboard)");
    }
  };
  return html`<div class="issued" data-testid="issued-key" role="status">
    <p><strong>The API key of ${issued.principal} (${shown(issued.role)}).</strong> Copy it now: it will not be shown again
      (modelreg keeps only its hash). If it is lost, revoke it and issue another.</p>
    ${issued.grants.length > 0 && html`<p data-testid="issued-key-grants">It holds the roles ${issued.principal} already
      holds: ${issued.grants.map((g, i) => html`${i ? ", " : ""}${shown(g.role)} on <code>${g.scope}</code>`)}.</p>`}
    <${Warnings} warnings=${issued.warnings} />
    <p class="row"><input class="secret" readonly aria-label="New API key" value=${issued.key} onFocus=${(e) => e.target.select()} />
      <button onClick=${copy}>Copy</button> ${copied && html`<span class="muted">${copied}</span>`}</p>
    <p><button class="link" onClick=${done}>Done: hide the key</button></p>
  </div>`;
}

function IssueKeyForm({ reload }) {
  const blank = { kind: "USER", id: "", role: "MEMBER", label: "", expires: "" };
  const [form, setForm] = useState(blank);
  const [issued, setIssued] = useState(null);
  const [state, run] = useMutation(reload);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setIssued(null);
    const input = { principalKind: form.kind, principalId: form.id.trim(), role: form.role, label: form.label.trim() || null };
    if (form.expires) input.expiresInS = Number(form.expires) * 86400;
    const data = await run(ISSUE_KEY, { input });
    if (data) { setIssued(data.issueApiKey); setForm(blank); }
  };
  return html`<section class="card">
    <h2>Issue an API key</h2>
    <form class="inline" data-testid="issue-key-form" onSubmit=${submit}>
      <label>Kind <select value=${form.kind} onChange=${set("kind")}><option value="USER">user</option><option value="SERVICE">service</option></select></label>
      <label>Id <input required value=${form.id} placeholder="zoe, ci" onInput=${set("id")} /></label>
      <label>Role <select value=${form.role} onChange=${set("role")}>${roleOptions()}</select></label>
      <label>Label <input value=${form.label} placeholder="laptop, CI" onInput=${set("label")} /></label>
      <label>Expires <select value=${form.expires} onChange=${set("expires")}>
        <option value="">never</option>${[30, 90, 365].map((d) => html`<option value=${d}>in ${d} days</option>`)}</select></label>
      <button type="submit" disabled=${state.busy || !form.id.trim()}>Issue key</button>
    </form>
    ${state.error && html`<${ErrorBox} error=${state.error} />`}
    ${issued && html`<${IssuedKey} issued=${issued} done=${() => setIssued(null)} />`}
  </section>`;
}

function GrantForm({ principals, models, reload }) {
  const blank = { principal: "", scope: "", role: "MEMBER" };
  const [form, setForm] = useState(blank);
  const [state, run] = useMutation(reload);
  const [said, setSaid] = useState([]);
  const set = (k) => (e) => setForm({ ...form, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    setSaid([]);
    const data = await run(GRANT, { input: { principal: form.principal.trim(), scope: form.scope.trim(), role: form.role } });
    if (data) { setForm(blank); setSaid(data.grantRole.warnings); }
  };
  return html`<section class="card">
    <h2>Grant a role on a scope</h2>
    <form class="inline" data-testid="grant-form" onSubmit=${submit}>
      <label>Principal <input required list="known-principals" value=${form.principal} placeholder="user:zoe" onInput=${set("principal")} /></label>
      <datalist id="known-principals">${principals.map((p) => html`<option value=${p.id} />`)}</datalist>
      <label>Scope <input required list="known-scopes" value=${form.scope} placeholder="model:<name>, registry, entity:<name>" onInput=${set("scope")} /></label>
      <datalist id="known-scopes"><option value="registry" />${models.map((m) => html`<option value=${"model:" + m.name} />`)}</datalist>
      <label>Role <select value=${form.role} onChange=${set("role")}>${roleOptions()}</select></label>
      <button type="submit" disabled=${state.busy || !form.principal.trim() || !form.scope.trim()}>Grant</button>
    </form>
    <p class="muted">A grant overrides the principal's key role on that scope, up or down: <code>${"model:<name>"}</code> (one
      registered model) before <code>registry</code> (every model); <code>${"entity:<name>"}</code> for its runs and
      artifacts.</p>
    <${Warnings} warnings=${said} />
    ${state.error && html`<${ErrorBox} error=${state.error} />`}
  </section>`;
}

const IDENTITY_EVENTS = { streamPrefix: "principal:" };

const MEMBERS = `query Members($scope: String!, $after: String) {
  grantsOn(scope: $scope, first: 50, after: $after) { items { principal role grantedBy grantedAt } endCursor hasNextPage }
}`;

// A scope the viewer is an admin of (a team admin: admin on entity:<team>): who holds a role there, granted and taken
// back here. They could do both through the API, but not see who held one.
function ScopeMembers({ scope }) {
  const pages = useCursorPages();
  const result = useQuery(MEMBERS, { scope, after: pages.after });
  useLive(IDENTITY_EVENTS, result.reload); // the scope's admins are sent the grants made there
  const [state, run] = useMutation(result.reload);
  const blank = { principal: "", role: "MEMBER" };
  const [form, setForm] = useState(blank);
  const [said, setSaid] = useState([]);
  const submit = async (e) => {
    e.preventDefault();
    setSaid([]);
    const data = await run(GRANT, { input: { principal: form.principal.trim(), scope, role: form.role } });
    if (data) { setForm(blank); setSaid(data.grantRole.warnings); }
  };
  return html`<section class="card" data-testid="scope-members" data-scope=${scope}>
    <h2>Roles on <code>${scope}</code></h2>
    <${Loaded} result=${result}>${({ grantsOn }) => html`
      <ul class="access-list">${grantsOn.items.map((g) => html`<li data-testid="member">
        <strong>${g.principal}</strong> <${Badge}>${shown(g.role)}<//>
        <span class="muted"> by ${g.grantedBy} <${Time} at=${g.grantedAt} /></span>
        <${Confirmed} label=${`revoke ${scope} of ${g.principal}`} busy=${state.busy} confirm="Revoke"
          question=${`Take ${shown(g.role)} on ${scope} from ${g.principal}?`}
          onConfirm=${() => run(REVOKE_GRANT, { input: { principal: g.principal, scope } })} /></li>`)}</ul>
      ${(pages.number > 1 || grantsOn.hasNextPage) && html`<${Pager} pages=${pages} page=${grantsOn} stale=${result.stale} />`}`}<//>
    <form class="inline" data-testid="scope-grant-form" onSubmit=${submit}>
      <label>Principal <input required value=${form.principal} placeholder="user:zoe" onInput=${(e) => setForm({ ...form, principal: e.target.value })} /></label>
      <label>Role <select value=${form.role} onChange=${(e) => setForm({ ...form, role: e.target.value })}>${roleOptions()}</select></label>
      <button type="submit" disabled=${state.busy || !form.principal.trim()}>Grant</button>
    </form>
    <${Warnings} warnings=${said} />
    ${state.error && html`<${ErrorBox} error=${state.error} />`}
  </section>`;
}

function AdminAccess({ keyInUse }) {
  const [search, setSearch] = useState("");
  const pages = useCursorPages();
  const result = useQuery(PRINCIPALS, { search: search.trim() || null, after: pages.after });
  useLive(IDENTITY_EVENTS, result.reload);
  const listed = result.data?.principals.items || [];
  return html`
    <div class="columns">
      <${IssueKeyForm} reload=${result.reload} />
      <${GrantForm} principals=${listed} models=${result.data?.registeredModels.items || []} reload=${result.reload} />
    </div>
    <h2>Principals</h2>
    <p class="row"><input type="search" aria-label="Search principals" placeholder="Search principals" value=${search}
      onInput=${(e) => { setSearch(e.target.value); pages.restart(); }} /></p>
    <${Loaded} result=${result}>${({ principals }) => html`
      <${Principals} principals=${principals.items} keyInUse=${keyInUse} reload=${result.reload} />
      ${!principals.items.length && html`<p class="muted">No principal${search ? ` matches ${search}` : ""}.</p>`}
      <${Pager} pages=${pages} page=${principals} stale=${result.stale} />`}<//>`;
}

function OwnAccess() {
  const result = useQuery(MINE);
  const viewer = useViewer();
  useLive({ streamPrefix: `principal:${viewer.id}` }, result.reload);
  return html`
    <p class="muted">Your keys and the roles you hold. Installation admins issue and revoke keys; the admins of a
      scope (a team) grant roles there: ask one to change them.</p>
    <${Loaded} result=${result}>${({ viewer: me }) => html`
      <p>You are using <code>${me.access.keys.find((k) => k.id === me.keyId)?.prefix || "a key"}…</code>, a <${Badge}>${shown(me.role)}<//> key.</p>
      <${Principals} principals=${[me.access]} mine keyInUse=${me.keyId} reload=${result.reload} />
      ${me.access.grants.filter((g) => g.role === "ADMIN").map((g) => html`<${ScopeMembers} key=${g.scope} scope=${g.scope} />`)}`}<//>`;
}

export function Access() {
  useTitle("Access");
  const viewer = useViewer();
  const admin = isAdmin(viewer);
  return html`<main class="pad"><h1>Access</h1>
    ${admin ? html`<${AdminAccess} keyInUse=${viewer.keyId} />` : html`<${OwnAccess} />`}
    <${PrivateScopes} admin=${admin} />
  </main>`;
}
