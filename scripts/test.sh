#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what it needs, then runs every check.
#
#   scripts/test.sh
#
# Heavy downloads (Python packages for the reader checks) are cached under
# ${WXCUBE_CACHE:-~/.cache/wxcube}, outside the clone, so repeat runs are fast; nothing depends
# on that cache existing.
set -euo pipefail
cd "$(dirname "$0")/.."

cache="${WXCUBE_CACHE:-$HOME/.cache/wxcube}"
venv="$cache/venv"
mkdir -p "$cache"

# Readers (DuckDB) in a virtualenv, rebuilt whenever tests/requirements.txt changes.
stamp="$venv/.requirements"
if ! cmp -s tests/requirements.txt "$stamp" || ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
  echo "==> installing test readers into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$stamp"
fi
export WXCUBE_PYTHON="$venv/bin/python"

# --- Apache Airflow, for the example DAG's test (tests/it/airflow.rs) ---------------------------
# In a virtualenv of its own (its pinned dependencies must not meet the readers'), rebuilt
# whenever tests/airflow/requirements.txt changes. About 300 MB, under a minute with a warm pip
# cache.
airflow_venv="$cache/airflow-venv"
airflow_stamp="$airflow_venv/.requirements"
if ! cmp -s tests/airflow/requirements.txt "$airflow_stamp" \
  || ! "$airflow_venv/bin/python" -c 'import importlib.metadata as m; m.version("apache-airflow")' 2>/dev/null; then
  echo "==> installing Apache Airflow into $airflow_venv"
  rm -rf "$airflow_venv"
  python3 -m venv "$airflow_venv"
  "$airflow_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/airflow/requirements.txt
  cp tests/airflow/requirements.txt "$airflow_stamp"
fi
export WXCUBE_AIRFLOW="$airflow_venv/bin/airflow"
# -------------------------------------------------------------------------------------------------

echo "==> cargo fmt --check"
cargo fmt --check
echo "==> cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --all-targets
