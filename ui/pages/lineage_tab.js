// The Lineage tab, whose module (with cytoscape and dagre, most of the UI's bytes) is loaded only when
// the tab opens, so that the other pages do not wait for it.
import { useEffect, useState } from "preact/hooks";
import { html, Loading, ErrorBox } from "../html.js";

let graphModule = null;

export function LineageTab(props) {
  const [loaded, setLoaded] = useState({ module: null, error: null });
  useEffect(() => {
    graphModule ||= import("./lineage.js");
    graphModule.then((module) => setLoaded({ module, error: null }), (error) => setLoaded({ module: null, error }));
  }, []);
  if (loaded.error) return html`<${ErrorBox} error=${loaded.error} />`;
  if (!loaded.module) return html`<${Loading} />`;
  return html`<${loaded.module.LineageGraph} ...${props} />`;
}
