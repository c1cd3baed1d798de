// Lineage as an interactive DAG: cytoscape draws it, laid out by dagre (left to right: datasets → runs →
// models). Click a run to open it; click an artifact to walk the lineage from there. A node with more
// neighbours in a direction than the walk draws (FAN_OUT) gets one cluster node there, "9,975 more runs":
// click it to search and page its members (lineage_cluster.js) and add one to the graph or walk from it.
// The same nodes and clusters are listed under the graph, for keyboards and screen readers.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { useQuery } from "../api.js";
import { html, shown, Loaded, Badge } from "../html.js";
import { NODE_FIELDS, label, idBeside, spoken, kindOf, nodeHref, refOf, nodeIdOf } from "./lineage_nodes.js";
import { ClusterPanel, clusterId, clusterLabel } from "./lineage_cluster.js";
import { useKeptInAddress } from "../components/pager.js";

cytoscape.use(dagre);

const FAN_OUT = 15; // neighbours drawn per node and direction: a column of 15 still fits the box at a legible size

const LINEAGE = `query Lineage($ref: String!, $direction: LineageDirection!, $depth: Int!) {
  lineage(ref: $ref, direction: $direction, depth: $depth, fanOut: ${FAN_OUT}) {
    nodes { ${NODE_FIELDS} }
    edges { source target kind }
    hidden { node direction count }
  }
}`;

const STYLE = [
  // Labels right of their node, on white: a column of runs packs tighter than with labels below.
  { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "center", "text-halign": "right", "text-margin-x": 5, color: "#1f2933", "text-background-color": "#fcfcfd", "text-background-opacity": 0.85, width: 20, height: 20 } },
  { selector: "node[kind = 'run']", style: { shape: "round-rectangle", "background-color": "#3b82f6" } },
  { selector: "node[kind = 'artifact']", style: { shape: "ellipse", "background-color": "#10b981" } },
  { selector: "node[type = 'dataset']", style: { shape: "barrel", "background-color": "#f59e0b" } },
  { selector: "node[kind = 'cluster']", style: { shape: "round-rectangle", "background-color": "#f3f4f6", "border-width": 1.5, "border-style": "dashed", "border-color": "#6b7280", "text-halign": "center", "text-margin-x": 0, "text-background-opacity": 0, color: "#374151", "font-size": 12, height: 24, width: (n) => 16 + 6.8 * n.data("label").length } },
  { selector: "node[?hidden]", style: { "background-color": "#d1d5db", "border-width": 1.5, "border-style": "dashed", "border-color": "#6b7280", color: "#6b7280" } },
  { selector: "node[?start]", style: { "border-width": 3, "border-color": "#111827", "font-weight": 600 } },
  { selector: "node[?picked]", style: { "border-width": 3, "border-color": "#8b5cf6" } },
  { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "#9ca3af", "target-arrow-color": "#9ca3af", "target-label": "data(label)", "target-text-offset": 34, "target-text-rotation": "autorotate", "font-size": 9, "min-zoomed-font-size": 8, color: "#6b7280" } },
  { selector: "edge[kind = 'cluster']", style: { "target-label": "", "line-style": "dashed" } },
];

// The walk, plus the members picked from clusters, plus one cluster per (node, direction) with some left.
function merge(lineage, added) {
  const nodes = new Map(lineage.nodes.map((n) => [n.id, n]));
  const edges = new Map(lineage.edges.map((e) => [`${e.source}->${e.target}`, e]));
  for (const { node, edge } of added) {
    if (!nodes.has(node.id)) nodes.set(node.id, node);
    edges.set(`${edge.source}->${edge.target}`, edge);
  }
  const clusters = lineage.hidden.map((h) => {
    const taken = added.filter((a) => a.cluster === clusterId(h)).length;
    return { ...h, id: clusterId(h), remaining: h.count - taken, parent: nodes.get(h.node), depth: nodes.get(h.node).depth + 1 };
  });
  return { nodes: [...nodes.values()], edges: [...edges.values()], clusters: clusters.filter((c) => c.remaining > 0) };
}

function Graph({ view, startId, picked, onNode, onCluster }) {
  const box = useRef(null);
  useEffect(() => {
    // Edges fanning out of (or into) one node are not labelled: their labels would pile up. A label
    // sits near the edge's target, as the source's own label covers the edge's start.
    const degree = new Map();
    for (const e of view.edges) for (const end of [`>${e.source}`, `<${e.target}`]) degree.set(end, (degree.get(end) ?? 0) + 1);
    const crowded = (e) => degree.get(`>${e.source}`) > 3 || degree.get(`<${e.target}`) > 3;
    const elements = [
      ...view.nodes.map((n) => ({
        data: { id: n.id, kind: shown(n.kind), type: n.artifactVersion?.type, label: label(n), start: n.id === startId, picked: picked.has(n.id), hidden: !!n.hidden, node: n },
      })),
      ...view.edges.map((e) => ({
        data: { id: `${e.source}->${e.target}`, source: e.source, target: e.target, kind: shown(e.kind), label: crowded(e) ? "" : shown(e.kind) },
      })),
      ...view.clusters.flatMap((c) => {
        const [source, target] = c.direction === "UPSTREAM" ? [c.id, c.node] : [c.node, c.id];
        return [{ data: { id: c.id, kind: "cluster", label: clusterLabel(c, c.remaining), cluster: c } },
          { data: { id: `${c.id}:edge`, kind: "cluster", source, target } }];
      }),
    ];
    const cy = cytoscape({
      container: box.current,
      elements,
      style: STYLE,
      layout: { name: "dagre", rankDir: "LR", nodeSep: 8, rankSep: 170 },
      maxZoom: 1.4, // a short chain fitted to the box would otherwise be drawn huge
    });
    cy.on("tap", "node", (e) => (e.target.data("cluster") ? onCluster(e.target.data("cluster")) : onNode(e.target.data("node"))));
    const resized = new ResizeObserver(() => { cy.resize(); cy.fit(undefined, 30); }); // the panel opened or closed
    resized.observe(box.current);
    box.current.cy = cy; // for tests and the console
    return () => { resized.disconnect(); cy.destroy(); };
  }, [view, startId]);
  return html`<div class="lineage-graph" ref=${box} data-testid="lineage-graph"></div>`;
}

function LineageView({ lineage, startId, added, setAdded, open, setOpen, walkFrom }) {
  const view = useMemo(() => merge(lineage, added), [lineage, added]);
  const picked = useMemo(() => new Set(added.map((a) => a.node.id)), [added]);
  const inGraph = useMemo(() => new Set(view.nodes.map((n) => n.id)), [view]);
  const cluster = lineage.hidden.find((h) => clusterId(h) === open); // stays open when its last member was added
  const parentDepth = (c) => lineage.nodes.find((n) => n.id === c.node).depth;
  const add = (c) => (item) => setAdded([...added, { node: { ...item.node, depth: parentDepth(c) + 1 }, edge: item.edge, cluster: clusterId(c) }]);
  const onNode = (n) => (n.hidden ? null : n.kind === "RUN" ? (location.hash = nodeHref(n).slice(1)) : walkFrom(n));
  return html`
    <div class="lineage-view">
      <${Graph} view=${view} startId=${startId} picked=${picked} onNode=${onNode} onCluster=${(c) => setOpen(c.id)} />
      ${cluster && html`<${ClusterPanel} key=${open} hidden=${cluster} fanOut=${FAN_OUT} inGraph=${inGraph}
        parent=${label(lineage.nodes.find((n) => n.id === cluster.node))} onAdd=${add(cluster)} onWalk=${walkFrom} onClose=${() => setOpen(null)} />`}
    </div>
    <table class="grid" data-testid="lineage-nodes">
      <thead><tr><th>Node</th><th>Kind</th><th>Steps away</th></tr></thead>
      <tbody>${view.nodes.map((n) => html`<tr>
        <td>${n.hidden ? html`<span class="muted" data-testid="hidden-node">${label(n)}</span>` : html`<a href=${nodeHref(n)}>${label(n)}</a>`}
          ${idBeside(n) && html` <span class="muted">${idBeside(n)}</span>`}
          ${n.id !== startId && !n.hidden && html` <button class="link small" onClick=${() => walkFrom(n)} aria-label=${"walk from " + spoken(n)}>walk from here</button>`}
          ${n.artifactVersion?.aliases.map((a) => html` <${Badge} kind="alias">${a}<//>`)}</td>
        <td>${kindOf(n)}</td>
        <td>${n.depth}</td></tr>`)}</tbody>
      ${view.clusters.length > 0 && html`<tbody data-testid="lineage-clusters">${view.clusters.map((c) => html`<tr>
        <td><button class="link" onClick=${() => setOpen(c.id)} aria-expanded=${open === c.id}>${clusterLabel(c, c.remaining)}</button>
          <span class="muted"> ${c.direction === "UPSTREAM" ? "upstream of" : "downstream of"} ${label(c.parent)}</span></td>
        <td>cluster</td>
        <td>${c.depth}</td></tr>`)}</tbody>`}
    </table>`;
}

const DIRECTIONS = ["UPSTREAM", "DOWNSTREAM", "BOTH"];
const DEPTH = 4;

// Where the walk starts, its direction and depth are kept in the address (`…/lineage?from=…&direction=upstream&depth=2`,
// each left out while it is the default), so that Back from a run's page, a reload or a shared link draws the same
// graph. Keyed by that address (artifact.js, version.js): a link with others starts from those.
export function LineageGraph({ start, path, params = new URLSearchParams() }) {
  // The address as it is when the graph mounts: mounted again on the same page (the tab unmounted while its answer
  // failed), it draws the walk as it was since, not as the page was entered.
  const [asked] = useState(() => {
    const [current, query = ""] = location.hash.split("?");
    return current === path ? new URLSearchParams(query) : params;
  });
  const [ref, setRef] = useState(() => asked.get("from") || start);
  const [direction, setDirection] = useState(() => {
    const named = (asked.get("direction") || "").toUpperCase();
    return DIRECTIONS.includes(named) ? named : "BOTH";
  });
  const [depth, setDepth] = useState(() => {
    const steps = Number(asked.get("depth"));
    return Number.isInteger(steps) && steps >= 1 && steps <= 20 ? steps : DEPTH;
  });
  const [added, setAdded] = useState([]); // cluster members picked into the graph: { node, edge, cluster }
  const [open, setOpen] = useState(null); // the id of the cluster whose panel is open
  useEffect(() => { setAdded([]); setOpen(null); }, [ref, direction, depth]);
  useKeptInAddress(path, {
    from: ref !== start ? ref : "", direction: direction !== "BOTH" ? direction.toLowerCase() : "",
    depth: depth !== DEPTH ? String(depth) : "",
  });
  const result = useQuery(LINEAGE, { ref, direction, depth });
  const walkFrom = (node) => setRef(refOf(node));
  return html`
    <div class="toolbar">
      <label>Direction <select value=${direction} onChange=${(e) => setDirection(e.target.value)}>
        <option value="UPSTREAM">upstream (where it came from)</option>
        <option value="DOWNSTREAM">downstream (what used it)</option>
        <option value="BOTH">both</option>
      </select></label>
      <label>Depth <input type="number" min="1" max="20" value=${depth} onChange=${(e) => setDepth(Number(e.target.value) || 1)} /></label>
      ${ref !== start && html`<button onClick=${() => setRef(start)}>Back to this version</button>`}
      <span class="muted legend"><span class="dot run"></span> run <span class="dot model"></span> artifact <span class="dot dataset"></span> dataset <span class="dot cluster"></span> more (click to search)</span>
    </div>
    <div class=${result.stale ? "stale" : ""} aria-busy=${result.stale}>
      <${Loaded} result=${result}>${({ lineage }) => html`<${LineageView} lineage=${lineage} startId=${nodeIdOf(ref)}
        added=${added} setAdded=${setAdded} open=${open} setOpen=${setOpen} walkFrom=${walkFrom} />`}<//>
    </div>`;
}
