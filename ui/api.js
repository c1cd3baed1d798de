// The UI's only way to the server: the public GraphQL API at /graphql (HTTP for queries and mutations,
// graphql-transport-ws for live events), with the API key the user pasted at login.
import { useEffect, useState, useCallback, useRef } from "preact/hooks";

const KEY = "modelreg.apiKey";

export const apiKey = {
  get: () => localStorage.getItem(KEY),
  set: (key) => localStorage.setItem(KEY, key),
  clear: () => localStorage.removeItem(KEY),
};

export class Unauthorized extends Error {}

// The server could not be reached (stopped, restarting, the network down), or a proxy in front of it answered for
// it: the browser's own words for that ("Failed to fetch") said nothing to a reader. A page's query that meets it
// asks again by itself (useQuery).
export class Unreachable extends Error {
  constructor() {
    super("modelreg is not answering");
  }
}

// Said when the server answers again after an outage (a query got through, or the live socket was accepted): the
// pages' queries that failed meanwhile ask again at once instead of at their next retry.
const REACHABLE = "modelreg:reachable";
let unreachable = false;
function reached() {
  if (!unreachable) return;
  unreachable = false;
  window.dispatchEvent(new Event(REACHABLE));
}

export class GraphQLError extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
  }
}

export async function gql(query, variables = {}, key = apiKey.get()) {
  let response;
  try {
    response = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${key || ""}` },
      body: JSON.stringify({ query, variables }),
    });
  } catch {
    unreachable = true;
    throw new Unreachable();
  }
  // A reverse proxy's answers while the server behind it is down or restarting.
  if ([502, 503, 504].includes(response.status)) {
    unreachable = true;
    throw new Unreachable();
  }
  reached();
  if (response.status === 401) {
    const text = await response.text();
    let why = text;
    try {
      why = JSON.parse(text).errors[0].message; // the API's one error shape
    } catch {
      // an older server's plain text
    }
    window.dispatchEvent(new CustomEvent("modelreg:unauthorized", { detail: why }));
    throw new Unauthorized(why);
  }
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`the API answered ${response.status}`);
  }
  if (body.errors?.length) throw new GraphQLError(body.errors);
  return body.data;
}

// How long a query that found the server unreachable waits before asking again: longer each time, up to 15 s
// (the server's answering again, seen by any query or the live socket, makes them all ask at once).
const RETRY_MS = [2000, 4000, 8000, 15000];

// Runs `query` whenever `variables` change (compared as JSON); `reload()` runs it again. Until the answer
// to new variables comes, the last one stays in `data` with `stale` set (from the first render on). While the
// server is unreachable it asks again by itself, so a page left open through an outage comes back on its own.
export function useQuery(query, variables = {}) {
  const [state, setState] = useState({ data: null, error: null, loading: true, vars: null });
  const [tick, setTick] = useState(0);
  const failures = useRef(0);
  const vars = JSON.stringify(variables);
  useEffect(() => {
    let current = true;
    setState((s) => ({ ...s, loading: true }));
    gql(query, JSON.parse(vars)).then(
      (data) => current && setState({ data, error: null, loading: false, vars }),
      (error) => current && setState({ data: null, error, loading: false, vars }),
    );
    return () => { current = false; };
  }, [query, vars, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const down = state.error instanceof Unreachable;
  useEffect(() => {
    if (!down) {
      failures.current = 0;
      return undefined;
    }
    const wait = RETRY_MS[Math.min(failures.current, RETRY_MS.length - 1)];
    failures.current += 1;
    const timer = setTimeout(reload, wait);
    window.addEventListener(REACHABLE, reload);
    return () => { clearTimeout(timer); window.removeEventListener(REACHABLE, reload); };
  }, [state.error]);
  return { ...state, stale: state.data !== null && state.vars !== vars, reload };
}

// Asks `result` again each time `changed` moves on (a count of the live events its page heard): a part of a page
// with a query of its own is re-read on the page's one subscription.
export function useReloadedWhen(result, changed) {
  const seen = useRef(changed);
  useEffect(() => {
    if (changed === seen.current) return;
    seen.current = changed;
    result.reload();
  }, [changed]);
}

const EVENTS = `subscription Live($registeredModel: String, $types: [String!], $streamPrefix: String, $after: String) {
  events(registeredModel: $registeredModel, types: $types, streamPrefix: $streamPrefix, after: $after) {
    id type stream actor occurredAt payload cursor
  }
}`;

// Sends a mutation and keeps its outcome for the form that sent it: `busy` while it runs, the `error` it
// met (shown next to that form), then `done()` so the page re-reads what changed.
export function useMutation(done = () => {}) {
  const [state, setState] = useState({ busy: false, error: null });
  const run = async (query, variables) => {
    setState({ busy: true, error: null });
    try {
      const data = await gql(query, variables);
      setState({ busy: false, error: null });
      done(data);
      return data;
    } catch (error) {
      setState({ busy: false, error });
      return null;
    }
  };
  return [state, run];
}

// Follows the `events` subscription (graphql-transport-ws, key in connection_init as browsers cannot
// set headers on a websocket). Reconnects after a drop and goes on right after the last event seen; `onEvent(null)`
// when it could not (its cursor refused), for the page to read again what it shows. Returns a function that stops it.
export function liveEvents(filter, onEvent, onStatus = () => {}) {
  let socket = null;
  let stopped = false;
  let after = null;
  let retry = null;
  let subscriptions = 0;
  const subscribe = () => {
    subscriptions += 1;
    const variables = { ...filter, after };
    socket.send(JSON.stringify({ id: `live-${subscriptions}`, type: "subscribe", payload: { query: EVENTS, variables } }));
  };
  const connect = () => {
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/graphql`;
    socket = new WebSocket(url, "graphql-transport-ws");
    socket.onopen = () => socket.send(JSON.stringify({ type: "connection_init", payload: { apiKey: apiKey.get() } }));
    socket.onmessage = (message) => {
      const msg = JSON.parse(message.data);
      if (msg.type === "connection_ack") {
        reached();
        onStatus("live");
        subscribe();
      } else if (msg.type === "next" && msg.payload.data) {
        const event = msg.payload.data.events;
        after = event.cursor;
        onEvent(event);
      } else if (msg.type === "ping") {
        socket.send(JSON.stringify({ type: "pong" }));
      } else if (msg.type === "next" && msg.id === `live-${subscriptions}` && after !== null
        && msg.payload.errors?.some((e) => e.extensions?.code === "INVALID_INPUT")) {
        // The cursor refused (an answer with errors, no event): the registry's log moved (`modelreg migrate-log`),
        // its offsets are no places in the new one. Followed again from now, under another id (the refused one
        // is completed by the server meanwhile), the page read again for what it missed.
        after = null;
        onEvent(null);
        subscribe();
      } else if (msg.type === "error") {
        onStatus("error");
      }
    };
    socket.onclose = (closed) => {
      if (stopped) return;
      if (closed.code === 4403) { // the key was refused (or revoked since): reconnecting would not help
        onStatus("refused");
        window.dispatchEvent(new CustomEvent("modelreg:unauthorized", { detail: closed.reason || "the live-events socket refused the key" }));
        return;
      }
      onStatus("reconnecting");
      retry = setTimeout(connect, 2000);
    };
  };
  connect();
  return () => {
    stopped = true;
    clearTimeout(retry);
    socket?.close();
  };
}

// Re-runs `reload` (at most every 300 ms) when an event matching `filter` reaches the log. A mutation's
// event reaches the log before the read models show it, so the reload waits a moment.
export function useLive(filter, reload) {
  const [status, setStatus] = useState("connecting");
  const key = JSON.stringify(filter);
  useEffect(() => {
    if (!filter) return undefined;
    let timer = null;
    const stop = liveEvents(JSON.parse(key), () => {
      clearTimeout(timer);
      timer = setTimeout(reload, 300);
    }, setStatus);
    return () => { clearTimeout(timer); stop(); };
  }, [key]);
  return status;
}

// An artifact file from the blob store, saved by the browser. Blobs need the API key in a header, which a
// plain link cannot send: fetched, then handed to the browser as a download.
export async function downloadBlob(digest, name) {
  const response = await fetch(`/blobs/${digest}`, { headers: { Authorization: `Bearer ${apiKey.get()}` } });
  if (response.status === 401) throw new Unauthorized("the API key was refused");
  if (!response.ok) throw new Error(`${name}: the server answered ${response.status} (${await response.text()})`);
  const url = URL.createObjectURL(await response.blob());
  const link = Object.assign(document.createElement("a"), { href: url, download: name.split("/").pop() });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
