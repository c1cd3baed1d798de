#!/usr/bin/env bash
# Runs the test suite against real Kafka and real Postgres, which the tests start themselves
# (or use KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WITH_KAFKA=1 source scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
