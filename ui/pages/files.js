// An artifact version's files as a tree: folders with their file count and total size, opened and closed
// with a click; each file with its size, digest and a download (or where a reference points).
import { useMemo, useState } from "preact/hooks";
import { downloadBlob } from "../api.js";
import { html, bytes } from "../html.js";

// Folders stay open on the first view up to this many rows, so that a 10,000-file dataset opens folded.
const OPEN_UP_TO = 200;

// [{path, size, ...}] -> a root folder {name, path, folders: Map, files: [], count, size}
export function fileTree(files) {
  const root = { name: "", path: "", folders: new Map(), files: [], count: 0, size: 0 };
  for (const file of files) {
    const parts = file.path.split("/");
    let folder = root;
    folder.count += 1;
    folder.size += Number(file.size);
    for (const part of parts.slice(0, -1)) {
      if (!folder.folders.has(part)) {
        const path = folder.path ? `${folder.path}/${part}` : part;
        folder.folders.set(part, { name: part, path, folders: new Map(), files: [], count: 0, size: 0 });
      }
      folder = folder.folders.get(part);
      folder.count += 1;
      folder.size += Number(file.size);
    }
    folder.files.push({ ...file, name: parts[parts.length - 1] });
  }
  return root;
}

function* rows(folder, depth, open) {
  for (const sub of [...folder.folders.values()].sort((a, b) => a.name.localeCompare(b.name))) {
    yield { kind: "folder", depth, folder: sub };
    if (open.has(sub.path)) yield* rows(sub, depth + 1, open);
  }
  for (const file of [...folder.files].sort((a, b) => a.name.localeCompare(b.name))) {
    yield { kind: "file", depth, file };
  }
}

function allFolders(folder, into = []) {
  for (const sub of folder.folders.values()) {
    into.push(sub.path);
    allFolders(sub, into);
  }
  return into;
}

function FileCells({ file }) {
  return html`<td>${bytes(file.size)}</td><td><code class="digest">${file.digest}</code></td>
    <td>${file.ref ? html`reference: <code>${file.ref}</code>` : html`<button class="link" aria-label=${"download " + file.path}
      onClick=${() => downloadBlob(file.digest, file.path).catch((e) => alert(e.message))}>download</button>`}</td>`;
}

export function Files({ files }) {
  const tree = useMemo(() => fileTree(files), [files]);
  const [open, setOpen] = useState(() => new Set(files.length <= OPEN_UP_TO ? allFolders(tree) : []));
  if (!files.length) return html`<p class="muted">No files.</p>`;
  const toggle = (path) => {
    const next = new Set(open);
    if (next.has(path)) next.delete(path); else next.add(path);
    setOpen(next);
  };
  const indent = (depth) => ({ paddingLeft: `${0.6 + depth * 1.2}rem` });
  return html`
    <table class="grid files" data-testid="files">
      <thead><tr><th>Name</th><th>Size</th><th>Digest</th><th>Stored</th></tr></thead>
      <tbody>${[...rows(tree, 0, open)].map((row) => row.kind === "folder"
        ? html`<tr class="folder"><td style=${indent(row.depth)}>
            <button class="link" aria-label=${`folder ${row.folder.path}/`} aria-expanded=${open.has(row.folder.path)} onClick=${() => toggle(row.folder.path)}>
              ${open.has(row.folder.path) ? "▾" : "▸"} ${row.folder.name}/</button>
            <span class="muted"> ${row.folder.count} files</span></td>
            <td>${bytes(row.folder.size)}</td><td></td><td></td></tr>`
        : html`<tr><td style=${indent(row.depth)} title=${row.file.path}><code>${row.file.name}</code></td><${FileCells} file=${row.file} /></tr>`)}
      </tbody>
      <tfoot><tr><th>${tree.count} files</th><th>${bytes(tree.size)}</th><th></th><th></th></tr></tfoot>
    </table>`;
}
