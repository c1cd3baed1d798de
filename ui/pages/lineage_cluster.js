// A cluster: the neighbours a lineage walk left out (a dataset used by 10,000 runs draws 25 of them and
// one "9,975 more runs" node). Opened, a panel searches its members and pages through them
// (lineageNeighbours, past the walk's fanOut), to add one to the graph or walk the lineage from it.
import { useEffect, useRef, useState } from "preact/hooks";
import { gql } from "../api.js";
import { html, ErrorBox, Badge } from "../html.js";
import { NODE_FIELDS, label, idBeside, spoken, nodeHref } from "./lineage_nodes.js";

const PAGE = 20;

const NEIGHBOURS = `query Cluster($node: ID!, $direction: LineageDirection!, $search: String, $fanOut: Int, $after: String) {
  lineageNeighbours(node: $node, direction: $direction, search: $search, fanOut: $fanOut, first: ${PAGE}, after: $after) {
    items { node { ${NODE_FIELDS} } edge { source target kind } }
    endCursor hasNextPage totalCount
  }
}`;

export const clusterId = (hidden) => `cluster:${hidden.direction}:${hidden.node}`;

// A run's neighbours are artifacts, an artifact's are runs.
const nouns = (hidden) => (hidden.node.startsWith("run:") ? ["artifact", "artifacts"] : ["run", "runs"]);

export function count(n, hidden) {
  const [one, many] = nouns(hidden);
  return `${n.toLocaleString("en-US")} ${n === 1 ? one : many}`;
}

export function clusterLabel(hidden, remaining) {
  const [one, many] = nouns(hidden);
  return `${remaining.toLocaleString("en-US")} more ${remaining === 1 ? one : many}`;
}

function title(hidden, parent) {
  const upstream = hidden.direction === "UPSTREAM";
  if (hidden.node.startsWith("run:")) return `Artifacts ${parent} ${upstream ? "used" : "produced"}`;
  return `Runs that ${upstream ? "produced" : "used"} ${parent}`;
}

export function ClusterPanel({ hidden, parent, fanOut, inGraph, onAdd, onWalk, onClose }) {
  const [search, setSearch] = useState("");
  const [term, setTerm] = useState("");
  const [page, setPage] = useState({ items: [], endCursor: null, hasNextPage: false, totalCount: null, loading: true, error: null });
  const latest = useRef(0); // answers to an older search or page are dropped

  useEffect(() => {
    const typing = setTimeout(() => setTerm(search.trim()), 250);
    return () => clearTimeout(typing);
  }, [search]);

  const load = async (after) => {
    const mine = ++latest.current;
    setPage((p) => (after ? { ...p, loading: true, error: null } : { items: [], endCursor: null, hasNextPage: false, totalCount: null, loading: true, error: null }));
    try {
      const variables = { node: hidden.node, direction: hidden.direction, search: term || null, fanOut, after };
      const { lineageNeighbours: next } = await gql(NEIGHBOURS, variables);
      if (mine !== latest.current) return;
      setPage((p) => ({ ...next, items: after ? [...p.items, ...next.items] : next.items, loading: false, error: null }));
    } catch (error) {
      // A failed first page leaves nothing of the last search to page on from.
      if (mine === latest.current) setPage((p) => (after ? { ...p, loading: false, error } : { items: [], endCursor: null, hasNextPage: false, totalCount: null, loading: false, error }));
    }
  };
  useEffect(() => { load(null); }, [hidden.node, hidden.direction, term, fanOut]);

  const [, many] = nouns(hidden);
  const status = page.totalCount === null ? "Loading…"
    : term ? `${count(page.totalCount, hidden)} matching “${term}”` : `${count(page.totalCount, hidden)} not drawn`;
  return html`<section class="cluster-panel" aria-label=${"cluster: " + title(hidden, parent)} data-testid="lineage-cluster">
    <div class="head">
      <h3>${title(hidden, parent)}</h3>
      <button class="link" onClick=${onClose} aria-label="close the cluster">Close</button>
    </div>
    <p class="muted">Beyond the ${fanOut} drawn, oldest first.</p>
    <input type="search" aria-label="Search the cluster" value=${search} onInput=${(e) => setSearch(e.target.value)}
      placeholder=${many === "runs" ? "run id, name or job type" : "name:version or alias"} />
    <p class="muted" role="status">${status}</p>
    ${page.error && html`<${ErrorBox} error=${page.error} />`}
    <ul class="members" data-testid="cluster-members">${page.items.map((item) => { const node = item.node; return html`<li key=${node.id}>
      ${node.hidden ? html`<span class="muted">${label(node)}</span>` : html`<a href=${nodeHref(node)} title="open">${label(node)}</a>`}
      ${idBeside(node) && html` <span class="muted">${idBeside(node)}</span>`}
      ${node.artifactVersion?.aliases.map((a) => html` <${Badge} kind="alias">${a}<//>`)}
      ${!node.hidden && html`<span class="actions">
        ${inGraph.has(node.id)
          ? html`<span class="badge">in graph</span>`
          : html`<button class="small" onClick=${() => onAdd(item)}
              aria-label=${"add " + spoken(node) + " to the graph"}>add to graph</button>`}
        <button class="link small" onClick=${() => onWalk(node)} aria-label=${"walk from " + spoken(node)}>walk from here</button>
      </span>`}</li>`; })}</ul>
    ${page.hasNextPage && html`<button onClick=${() => load(page.endCursor)} disabled=${page.loading}>Load more</button>`}
  </section>`;
}
