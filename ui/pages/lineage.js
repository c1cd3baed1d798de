// Lineage as an interactive DAG: cytoscape draws it, laid out by dagre (left to right: datasets → runs →
// models). Click a run to open it; click an artifact to walk the lineage from there. The same nodes are
// listed under the graph as links (to the run or artifact page, and "walk from here"), for keyboards and
// screen readers.
import { useEffect, useRef, useState } from "preact/hooks";
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";
import { useQuery } from "../api.js";
import { html, Loaded, runHref, artifactHref, Badge } from "../html.js";

cytoscape.use(dagre);

const LINEAGE = `query Lineage($ref: String!, $direction: LineageDirection!, $depth: Int!) {
  lineage(ref: $ref, direction: $direction, depth: $depth, fanOut: 50) {
    nodes {
      id kind depth
      run { entity project runId name jobType state }
      artifactVersion { id entity project name type version aliases }
    }
    edges { source target kind }
    truncated
  }
}`;

function label(node) {
  if (node.kind === "run") return `${node.run?.jobType ? node.run.jobType + ": " : "run "}${node.run?.runId ?? node.id}`;
  const av = node.artifactVersion;
  return av ? `${av.name}:${av.version}` : node.id;
}

const STYLE = [
  { selector: "node", style: { label: "data(label)", "font-size": 11, "text-valign": "bottom", "text-margin-y": 4, color: "#1f2933", width: 26, height: 26 } },
  { selector: "node[kind = 'run']", style: { shape: "round-rectangle", "background-color": "#3b82f6" } },
  { selector: "node[kind = 'artifact']", style: { shape: "ellipse", "background-color": "#10b981" } },
  { selector: "node[type = 'dataset']", style: { shape: "barrel", "background-color": "#f59e0b" } },
  { selector: "node[?start]", style: { "border-width": 4, "border-color": "#111827" } },
  { selector: "node[?truncated]", style: { "border-width": 2, "border-style": "dashed", "border-color": "#ef4444" } },
  { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": "#9ca3af", "target-arrow-color": "#9ca3af", label: "data(kind)", "font-size": 9, color: "#6b7280", "text-rotation": "autorotate" } },
];

function Graph({ lineage, startId, onArtifact }) {
  const box = useRef(null);
  useEffect(() => {
    const truncated = new Set(lineage.truncated);
    const elements = [
      ...lineage.nodes.map((n) => ({
        data: { id: n.id, kind: n.kind, type: n.artifactVersion?.type, label: label(n), start: n.id === startId, truncated: truncated.has(n.id), node: n },
      })),
      ...lineage.edges.map((e) => ({ data: { id: `${e.source}->${e.target}`, source: e.source, target: e.target, kind: e.kind } })),
    ];
    const cy = cytoscape({
      container: box.current,
      elements,
      style: STYLE,
      layout: { name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 90 },
      maxZoom: 1.4, // a short chain fitted to the box would otherwise be drawn huge
      wheelSensitivity: 0.3,
    });
    cy.on("tap", "node", (e) => {
      const n = e.target.data("node");
      if (n.kind === "run" && n.run) location.hash = runHref(n.run.entity, n.run.project, n.run.runId).slice(1);
      else if (n.artifactVersion) onArtifact(n.artifactVersion.id);
    });
    box.current.cy = cy; // for tests and the console
    return () => cy.destroy();
  }, [lineage, startId]);
  return html`<div class="lineage-graph" ref=${box} data-testid="lineage-graph"></div>`;
}

export function LineageGraph({ start }) {
  const [ref, setRef] = useState(start);
  const [direction, setDirection] = useState("BOTH");
  const [depth, setDepth] = useState(4);
  useEffect(() => setRef(start), [start]);
  const result = useQuery(LINEAGE, { ref, direction, depth });
  const startId = `artifact:${ref}`;
  return html`
    <div class="toolbar">
      <label>Direction <select value=${direction} onChange=${(e) => setDirection(e.target.value)}>
        <option value="UPSTREAM">upstream (where it came from)</option>
        <option value="DOWNSTREAM">downstream (what used it)</option>
        <option value="BOTH">both</option>
      </select></label>
      <label>Depth <input type="number" min="1" max="20" value=${depth} onChange=${(e) => setDepth(Number(e.target.value) || 1)} /></label>
      ${ref !== start && html`<button onClick=${() => setRef(start)}>Back to this version</button>`}
      <span class="muted legend"><span class="dot run"></span> run <span class="dot model"></span> artifact <span class="dot dataset"></span> dataset</span>
    </div>
    <${Loaded} result=${result}>${({ lineage }) => html`
      <${Graph} lineage=${lineage} startId=${startId} onArtifact=${setRef} />
      <table class="grid" data-testid="lineage-nodes">
        <thead><tr><th>Node</th><th>Kind</th><th>Steps away</th></tr></thead>
        <tbody>${lineage.nodes.map((n) => html`<tr>
          <td>${n.kind === "run" && n.run
            ? html`<a href=${runHref(n.run.entity, n.run.project, n.run.runId)}>${label(n)}</a>`
            : html`<a href=${artifactHref(n.artifactVersion?.id ?? "")}>${label(n)}</a>
                ${n.id !== startId && html` <button class="link small" onClick=${() => n.artifactVersion && setRef(n.artifactVersion.id)}
                  aria-label=${"walk from " + label(n)}>walk from here</button>`}`}
            ${n.artifactVersion?.aliases.map((a) => html` <${Badge} kind="alias">${a}<//>`)}</td>
          <td>${n.kind === "run" ? "run" : n.artifactVersion?.type ?? "artifact"}</td>
          <td>${n.depth}</td></tr>`)}</tbody>
      </table>
      ${lineage.truncated.length > 0 && html`<p class="muted">${lineage.truncated.length} nodes have more neighbours than shown (dashed).</p>`}
    `}<//>`;
}
