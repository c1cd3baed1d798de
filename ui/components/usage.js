// The snippet that pulls one exact artifact version into training code (the API writes it: `usage`).
import { useState } from "preact/hooks";
import { html } from "../html.js";

export function Usage({ usage }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => { await navigator.clipboard?.writeText(usage); setCopied(true); };
  return html`
    <p>Pulls this exact version (by its immutable <code>vN</code>, never by a moving alias):</p>
    <pre class="code" data-testid="usage">${usage}</pre>
    <button onClick=${copy}>${copied ? "Copied" : "Copy"}</button>`;
}
