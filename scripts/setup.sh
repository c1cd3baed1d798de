#!/usr/bin/env bash
# Installs what modelreg needs on a fresh machine: a virtualenv with the package and its extras and, when
# WITH_KAFKA=1 (the tests), Java, Maven and Kafka's jars from Maven Central (cached after the first run)
# for a local Kafka broker, and chromium for the web UI's browser test. Sourced by serve.sh and test.sh; safe to run again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
WITH_KAFKA=${WITH_KAFKA:-0}

if [ "$WITH_KAFKA" = 1 ] && { ! command -v java >/dev/null || ! command -v mvn >/dev/null; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Java and Maven (apt-get)"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless maven >/dev/null
  else
    echo "modelreg needs Java 17+ and Maven for its local Kafka broker: install them, or set KAFKA_BOOTSTRAP_SERVERS" >&2
    exit 1
  fi
fi

# The web UI's browser test (tests/e2e/test_web_ui.py) drives Debian's chromium with Playwright (whose own
# browser download is not needed); without chromium that test is skipped, saying why.
if [ "$WITH_KAFKA" = 1 ] && [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing chromium for the web UI's browser test (apt-get)"
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null || echo "chromium could not be installed: the browser test will be skipped" >&2
fi

# The embedded PostgreSQL keeps a lock file (and, for a long data path, its socket) in the user's runtime
# directory. A login session provides one; a container, CI or cron may not, and platformdirs then warns. Give
# it what the XDG spec asks for (owned by this user, mode 0700; a shared /tmp is refused with a warning): the
# same folder platformdirs falls back to.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/runtime-$(id -u)"
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PYTHON" -m venv .venv
fi
# Installed again only when the source changed (a stamp of its files, as git lists them): reinstalling on every
# `serve.sh` replaced the package's files under running agents and the jobs they run with this interpreter.
source_stamp() {
  command -v sha256sum >/dev/null || return 0  # no stamp: installed every time, as before
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    { git ls-files -co --exclude-standard -z | xargs -0 sha256sum 2>/dev/null || true; } | sha256sum | cut -d' ' -f1
  fi
}
STAMP="server,test $(source_stamp)"
if [ "$STAMP" != "server,test " ] && [ "$(cat .venv/.modelreg-installed 2>/dev/null)" = "$STAMP" ]; then
  echo "== modelreg[server,test] in .venv is this source's (rm .venv/.modelreg-installed to install it again)"
else
  echo "== installing modelreg[server,test] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q ".[server,test]"
  echo "$STAMP" > .venv/.modelreg-installed
fi

if [ "$WITH_KAFKA" = 1 ] && [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  echo "== Kafka jars (fetched from Maven Central once, then cached)"
  .venv/bin/modelreg kafka fetch
fi

# The tests' S3-compatible server (SeaweedFS) and kubeconform are Go programs, built once from the Go module
# proxy and cached under ~/.cache/modelreg (the first build of SeaweedFS takes minutes on 2 cores).
if [ "$WITH_KAFKA" = 1 ]; then
  export PATH="$PATH:/usr/local/go/bin"
  if command -v go >/dev/null; then
    echo "== SeaweedFS, the tests' S3 server (built with Go once, then cached)"
    .venv/bin/modelreg object-store build
    KUBECONFORM="${XDG_CACHE_HOME:-$HOME/.cache}/modelreg/kubeconform-v0.8.0"
    [ -x "$KUBECONFORM/kubeconform" ] || GOBIN="$KUBECONFORM" go install github.com/yannh/kubeconform/cmd/kubeconform@v0.8.0
  else
    echo "Go is not installed: the object storage and Kubernetes manifest tests need it (SeaweedFS, kubeconform)" >&2
  fi
fi
