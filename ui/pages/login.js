// Log in with an API key: checked with `viewer`, then kept in this browser's localStorage.
import { useState } from "preact/hooks";
import { apiKey, gql } from "../api.js";
import { html, useTitle } from "../html.js";
import { VIEWER } from "../access.js";

export function Login({ onLogin, refused }) {
  useTitle("Log in");
  const [key, setKey] = useState("");
  const [error, setError] = useState(refused ? "The stored API key was refused: " + refused : null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { viewer } = await gql(VIEWER, {}, key.trim());
      apiKey.set(key.trim());
      onLogin(viewer);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`
    <main class="login">
      <h1>modelreg</h1>
      <form onSubmit=${submit}>
        <label for="api-key">API key</label>
        <input id="api-key" name="api-key" type="password" autocomplete="off" placeholder="mr_…" value=${key}
               onInput=${(e) => setKey(e.target.value)} required autofocus />
        <button type="submit" disabled=${busy || !key.trim()}>Log in</button>
      </form>
      ${error && html`<div class="error" role="alert">${error}</div>`}
      <p class="muted">The key stays in this browser (localStorage) and is sent only to this server. <code>modelreg
        server</code> wrote an admin key to <code>${"<data-dir>/admin-api-key"}</code> on its first start; admins issue
        others on the Access page.</p>
    </main>`;
}
