#!/usr/bin/env bash
# The bench job for the scale tests marked `slow`, which a plain test run (and so CI) leaves out: 100,000
# events from 8 writers with a tailing reader on each event log, two agents running 200 jobs each once, and three
# of the Kafka outage stories (aiokafka's lines once a minute, the triggers and projector processes stopped meanwhile).
# Same set-up as scripts/test.sh (it installs the package and Kafka's jars, and the tests start Kafka and
# PostgreSQL unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set); prints each test's duration.
# Usage: bash bench/slow_tests.sh [pytest arguments, e.g. -k postgres]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# `-m slow` given here replaces the `-m 'not slow'` of pyproject.toml's addopts (the last -m wins).
exec bash scripts/test.sh -m slow --durations=0 -q "$@"
