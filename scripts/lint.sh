#!/usr/bin/env bash
# The style and type checks CI runs before the tests (.ci/run): ruff's formatter and linter on the whole
# checkout, then mypy on the installed `modelreg` package. Any finding fails the script.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
# Non-editable, like scripts/test.sh: mypy checks exactly what `pip install` ships (the `dev` extra pins the
# checkers, so every machine reports the same findings).
echo "== installing modelreg[server,dev] into .venv"
.venv/bin/python -m pip install -q ".[server,dev]"

echo "== ruff format --check"
.venv/bin/ruff format --check .
echo "== ruff check"
.venv/bin/ruff check .

# mypy cannot follow pyproject's package-dir mapping (client/ -> modelreg, ...), so it analyses the installed
# package from outside the checkout (where the root graphql/ folder cannot shadow graphql-core), and its
# paths are mapped back to the checkout's files so an editor can jump to them.
echo "== mypy -p modelreg"
checkout=$PWD
report=$(mktemp)
trap 'rm -f "$report"' EXIT
status=0
(cd "${TMPDIR:-/tmp}" && "$checkout/.venv/bin/mypy" --config-file "$checkout/pyproject.toml" \
  --cache-dir "$checkout/.mypy_cache" -p modelreg) >"$report" 2>&1 || status=$?
sed -E \
  -e 's#^[^:]*site-packages/modelreg/#modelreg/#' \
  -e 's#^modelreg/(events|projections|graphql|services|ui)/#\1/#' \
  -e 's#^modelreg/#client/#' "$report"
exit $status
