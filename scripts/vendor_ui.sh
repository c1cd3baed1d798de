#!/usr/bin/env bash
# Refreshes ui/vendor/: installs the browser libraries pinned in ui/package.json (exact versions, and
# ui/package-lock.json's integrity hashes) with npm in a scratch folder, and copies their ready-made ES
# module builds and licences into ui/vendor/. The result is committed, so that serving the UI, running
# its tests and CI need neither npm nor a build step; run this only to upgrade a library (edit
# ui/package.json, delete ui/package-lock.json, run it, commit ui/).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cp ui/package.json "$scratch/"
if [ -f ui/package-lock.json ]; then
  cp ui/package-lock.json "$scratch/"
  (cd "$scratch" && npm ci --ignore-scripts --no-audit --no-fund)
else
  (cd "$scratch" && npm install --ignore-scripts --no-audit --no-fund)
  cp "$scratch/package-lock.json" ui/
fi
m="$scratch/node_modules"
out=ui/vendor
rm -rf "$out" && mkdir -p "$out/licenses"
cp "$m/preact/dist/preact.mjs" "$out/preact.js"
cp "$m/preact/hooks/dist/hooks.mjs" "$out/preact-hooks.js"     # imports "preact": see the import map in ui/index.html
cp "$m/htm/dist/htm.mjs" "$out/htm.js"
cp "$m/cytoscape/dist/cytoscape.esm.min.mjs" "$out/cytoscape.js"
cp "$m/cytoscape-dagre/dist/cytoscape-dagre.min.mjs" "$out/cytoscape-dagre.js"  # bundles @dagrejs/dagre
cp "$m/uplot/dist/uPlot.esm.js" "$out/uplot.js"
cp "$m/uplot/dist/uPlot.min.css" "$out/uplot.css"
cp "$m/marked/lib/marked.esm.js" "$out/marked.js"
cp "$m/dompurify/dist/purify.es.mjs" "$out/purify.js"
# GraphiQL's page (ui/graphiql.html, at /graphql): UMD builds, which set globals; React 18 is the last with them.
cp "$m/react/umd/react.production.min.js" "$out/react.js"
cp "$m/react-dom/umd/react-dom.production.min.js" "$out/react-dom.js"
cp "$m/graphiql/graphiql.min.js" "$out/graphiql.js"
cp "$m/graphiql/graphiql.min.css" "$out/graphiql.css"
cp "$m/@graphiql/plugin-explorer/dist/index.umd.js" "$out/graphiql-explorer.js"
cp "$m/@graphiql/plugin-explorer/dist/style.css" "$out/graphiql-explorer.css"
sed -i '/sourceMappingURL=/d' "$out"/*.js "$out"/*.css   # the maps are not shipped
for p in preact htm cytoscape cytoscape-dagre uplot marked dompurify react react-dom graphiql @graphiql/plugin-explorer; do
  name=${p#@}
  licence="$out/licenses/${name//\//-}.txt"
  if [ -f "$m/$p/LICENSE" ]; then
    cp "$m/$p/LICENSE" "$licence"
  else  # @graphiql/plugin-explorer ships none: its package.json names the licence
    echo "$p is published under the $(node -p "require('$m/$p/package.json').license") licence (its package ships no LICENSE file)." > "$licence"
  fi
  echo "$p $(node -p "require('$m/$p/package.json').version")"
done > "$out/VERSIONS"
cat "$out/VERSIONS"
