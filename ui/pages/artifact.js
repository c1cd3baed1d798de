// One artifact version, linked to a registered model or not (a dataset, say): facts and metadata, files,
// usage and lineage. Lineage nodes and runs' inputs and outputs lead here.
import { useQuery } from "../api.js";
import { useViewer, may, mayAnywhere, entityScopes } from "../access.js";
import { html, href, AliasBadges, Loaded, Badge, Markdown, Tabs, Time, artifactHref, useTitle } from "../html.js";
import { ArtifactOrigin, Fact, Facts, KeyValues } from "../components/facts.js";
import { Usage } from "../components/usage.js";
import { Files } from "./files.js";
import { LinkForm, VersionTags } from "./model_controls.js";
import { LineageTab } from "./lineage_tab.js";

const ARTIFACT = `query Artifact($id: ID!) {
  artifactVersion(id: $id) {
    id entity project name type version digest description metadata aliases tags createdAt createdBy loggedByRun usage deletedAt
    files { path size digest ref }
    linkedTo { registeredModel version aliases }
  }
}`;

const TABS = [["overview", "Overview"], ["files", "Files"], ["usage", "Usage"], ["lineage", "Lineage"]];

export function ArtifactPage({ id, tab, query, params }) {
  const result = useQuery(ARTIFACT, { id });
  const named = result.data?.artifactVersion;
  useTitle(named ? `${named.name} ${named.version}` : "Artifact");
  const viewer = useViewer();
  return html`<main class="pad"><${Loaded} result=${result}>${({ artifactVersion: av }) => {
    if (!av) return html`<p class="muted">No artifact version ${id}.</p>`;
    let body;
    if (tab === "files") body = html`<${Files} key=${av.id} files=${av.files} />`;
    else if (tab === "usage") body = html`<${Usage} usage=${av.usage} />`;
    else if (tab === "lineage") body = html`<${LineageTab} key=${query} start=${av.id} path=${href("artifacts", id, "lineage")} params=${params} />`;
    else body = html`
      <div class="columns">
        <section>
          <${Facts}>
            <${Fact} label="Type">${av.type}<//>
            <${Fact} label="In the registry" testid="linked-to">${av.linkedTo.map((l) => html`<a href=${href("models", l.registeredModel, l.version)}>${l.registeredModel} ${l.version}</a>
              <${AliasBadges} aliases=${l.aliases} /> `)}${!av.linkedTo.length && html`<span class="muted">not linked</span>`}<//>
            <${Fact} label="Aliases">${av.aliases.map((a) => html`<${Badge} kind="alias">${a}<//> `)}${!av.aliases.length && html`<span class="muted">none</span>`}<//>
            <${Fact} label="Tags"><${VersionTags} av=${av} editable=${may(viewer, "member", entityScopes(av.entity))} reload=${result.reload} /><//>
            <${ArtifactOrigin} av=${av} />
          <//>
          ${av.description && html`<h3>Description</h3><${Markdown} text=${av.description} />`}
          ${mayAnywhere(viewer, "member", ["model:", "registry"]) && html`<h3>Link to the registry</h3><${LinkForm} artifactId=${av.id} />`}
        </section>
        <section><h2>Metadata</h2><${KeyValues} value=${av.metadata} empty="No metadata." /></section>
      </div>`;
    return html`
      <p class="crumbs">${av.entity} / ${av.project} / ${av.type}</p>
      <h1>${av.name} <span class="muted">${av.version}</span></h1>
      ${av.deletedAt && html`<p class="muted" data-testid="deleted">Deleted <${Time} at=${av.deletedAt} />: no ref or list finds it any more; lineage and the audit log keep it.</p>`}
      <${Tabs} tabs=${TABS} current=${tab} link=${(t) => artifactHref(av.id, t)} />
      <section class="tab-body" data-testid=${"tab-" + tab}>${body}</section>`;
  }}<//></main>`;
}
