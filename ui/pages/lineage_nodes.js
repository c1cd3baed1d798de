// What the lineage views show of a node (a run or an artifact version): the fields they ask for, its
// label, the page it links to, and the ref that walks the lineage from it. A node in a private entity the
// viewer may not read comes as `hidden` (its kind only): it is drawn, named "private", and leads nowhere.
// A run is labelled by its name, as W&B's lineage does (every run has one: the registry names a run started
// without one), its id said beside it where there is room: names tell runs apart, ids are what code passes.
import { runHref, artifactHref } from "../html.js";

export const NODE_FIELDS = `id kind depth hidden
  run { entity project runId name jobType state }
  artifactVersion { id entity project name type version aliases }`;

export function label(node) {
  if (node.hidden) return `private ${kindOf(node)}`;
  if (node.kind === "RUN") return `${node.run?.jobType ? node.run.jobType + ": " : "run "}${node.run?.name || node.run?.runId || node.id}`;
  const av = node.artifactVersion;
  return av ? `${av.name}:${av.version}` : node.id;
}

// The run's id, where the label names the run by something else.
export function idBeside(node) {
  const run = node.hidden ? null : node.run;
  return run?.name && run.name !== run.runId ? run.runId : null;
}

// What a control acting on the node says of it to a screen reader: the label, and the run's id where names repeat.
export function spoken(node) {
  return idBeside(node) ? `${label(node)} (${idBeside(node)})` : label(node);
}

export function kindOf(node) {
  return node.kind === "RUN" ? "run" : node.artifactVersion?.type ?? "artifact";
}

export function nodeHref(node) {
  if (node.hidden) return null;
  if (node.kind === "RUN" && node.run) return runHref(node.run.entity, node.run.project, node.run.runId);
  return artifactHref(node.artifactVersion?.id ?? node.id.slice("artifact:".length));
}

// What `lineage(ref:)` takes: a version's id, or the run's node id itself.
export function refOf(node) {
  return node.kind === "RUN" ? node.id : node.artifactVersion?.id ?? node.id.slice("artifact:".length);
}

export function nodeIdOf(ref) {
  return ref.startsWith("run:") ? ref : `artifact:${ref}`;
}
