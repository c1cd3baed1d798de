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
sed -i '/sourceMappingURL=/d' "$out"/*.js "$out"/*.css   # the maps are not shipped
for p in preact htm cytoscape cytoscape-dagre uplot marked dompurify; do
  cp "$m/$p/LICENSE" "$out/licenses/$p.txt"
  echo "$p $(node -p "require('$m/$p/package.json').version")"
done > "$out/VERSIONS"
cat "$out/VERSIONS"
