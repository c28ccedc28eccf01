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

. scripts/venv.sh

# Readers (DuckDB, PySpark) and the S3 test server (moto), rebuilt whenever
# tests/requirements.txt changes.
ensure_readers
export WXCUBE_PYTHON="$venv/bin/python"

# The Delta Lake readers (deltalake, Polars, DuckDB's delta extension), rebuilt whenever
# tests/delta/requirements.txt changes; a virtualenv of their own, as the extension needs an older
# DuckDB than the readers above.
ensure_delta_readers
export WXCUBE_DELTA_PYTHON="$cache/delta-venv/bin/python"

# --- Apache Airflow, for the example DAG's test (tests/it/airflow.rs) ---------------------------
# In a virtualenv of its own (its pinned dependencies must not meet the readers'). About 300 MB,
# under a minute with a warm pip cache.
airflow_venv="$cache/airflow-venv"
ensure_venv "$airflow_venv" tests/airflow/requirements.txt \
  'import importlib.metadata as m; m.version("apache-airflow")'
export WXCUBE_AIRFLOW="$airflow_venv/bin/airflow"
# -------------------------------------------------------------------------------------------------

echo "==> cargo fmt --all --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy --test tools --quiet -- -D warnings
echo "==> cargo test (everything that needs nothing but Rust)"
cargo test --workspace --all-targets
echo "==> cargo test --test tools (DuckDB, PySpark, moto, Airflow)"
# Three at a time: each starts its own moto server or JVM, and on two cores more of them at once
# starved moto until it stopped accepting connections within object_store's connect timeout.
cargo test --test tools -- --test-threads 3
