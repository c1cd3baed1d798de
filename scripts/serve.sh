#!/usr/bin/env bash
# Runs modelreg on this machine with nothing but Python: an embedded PostgreSQL (read models and the event
# log), the projections and the API in one process; prints the GraphQL URL. Data lives in --data-dir
# (default: the user's data folder) and survives restarts. Extra arguments go to `modelreg server`
# (`--local-kafka` or `--kafka HOST:PORT` keep the event log on Kafka; see `modelreg server --help`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/modelreg server "$@"
