#!/usr/bin/env bash
# Runs modelreg on this machine: starts Kafka and PostgreSQL (unless given), the projector and the API,
# and prints the GraphQL URL. Data lives in --data-dir (default: the user's data folder). Extra
# arguments go to `modelreg server` (see `modelreg server --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
exec .venv/bin/modelreg server "$@"
