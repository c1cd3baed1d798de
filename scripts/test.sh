#!/usr/bin/env bash
# Runs the test suite against real Kafka and real Postgres, which the tests start themselves
# (or use KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL when set). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WITH_KAFKA=1 source scripts/setup.sh

# One run writes about 5 GiB under the temporary folder (Kafka's log, PostgreSQL's clusters, object storage),
# and pytest keeps the last three runs' folders. On a nearly full disk the S3 server turns read-only and the
# tests that upload fail with "500 Internal Server Error": say so before, not after 20 minutes.
free_kib=$(df -Pk "${TMPDIR:-/tmp}" | awk 'NR == 2 {print $4}')
if [ "${free_kib:-0}" -lt $((8 * 1024 * 1024)) ]; then
  echo "warning: only $((free_kib / 1024 / 1024)) GiB free under ${TMPDIR:-/tmp}; the tests need about 8 GiB." \
    "Free space (old /tmp/pytest-of-$(id -un) folders) or point TMPDIR elsewhere." >&2
fi
exec .venv/bin/python -m pytest "$@"
