// What the logged-in key may do, so that pages offer only that. Mirrors services/commands/access.py
// (Caller.role_on): a key's role holds everywhere, a grant on a scope overrides it there (`model:<name>`
// before `registry`), and an admin key is admin everywhere. The server still checks every mutation.
import { createContext } from "preact";
import { useContext } from "preact/hooks";

const RANK = { viewer: 1, member: 2, admin: 3 };

// Who the key belongs to, its role, its grants and its id (the Access page marks the key in use).
export const VIEWER = "{ viewer { id role grants keyId } }";

export const ViewerContext = createContext(null);

export function useViewer() {
  return useContext(ViewerContext);
}

export function modelScopes(name) {
  return [`model:${name}`, "registry"]; // most specific first
}

export function entityScopes(entity) {
  return [`entity:${entity}`];
}

// Whether some scope of a kind lets the key do `needed` (a member key, or a grant of member on one model):
// where the scope is not known before the user types it (linking to a model they name). `kinds`: the
// scope prefixes that command is checked on ("model:" and "registry" for a link, "entity:" for a job).
export function mayAnywhere(viewer, needed, kinds) {
  const scopes = Object.keys(viewer?.grants || {}).filter((s) => kinds.some((k) => s.startsWith(k)) && RANK[viewer.grants[s]] >= RANK[needed]);
  return may(viewer, needed, scopes);
}

// Roles in lower case, as grants (a JSON object) hold them; the API's Role enum says ADMIN, MEMBER, VIEWER.
export function roleOn(viewer, scopes) {
  if (!viewer) return "viewer";
  if (isAdmin(viewer)) return "admin";
  for (const scope of scopes) {
    if (viewer.grants && scope in viewer.grants) return viewer.grants[scope];
  }
  return viewer.role.toLowerCase();
}

// An admin key: installation admin.
export function isAdmin(viewer) {
  return viewer?.role === "ADMIN";
}

export function may(viewer, needed, scopes) {
  return (RANK[roleOn(viewer, scopes)] || 0) >= RANK[needed];
}
