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

# --- Apache Airflow, for the example DAG's test (tests/tools/airflow.rs) ------------------------
# In a virtualenv of its own (its pinned dependencies must not meet the readers'). About 300 MB,
# under a minute with a warm pip cache.
airflow_venv="$cache/airflow-venv"
ensure_venv "$airflow_venv" tests/airflow/requirements.txt \
  'import importlib.metadata as m; m.version("apache-airflow")'
export WXCUBE_AIRFLOW="$airflow_venv/bin/airflow"
# -------------------------------------------------------------------------------------------------

# --- The wheel users `pip install` ---------------------------------------------------------------
# Built once for this machine (the dev profile: the same code, a quicker build than the
# published wheels' `dist`), installed with pip into a fresh virtualenv; the tests run that
# `wxcube`, and the Airflow DAG's test finds it on PATH, as a worker would.
ensure_maturin
install_dir="$(mktemp -d)"
trap 'rm -rf "$install_dir"' EXIT
echo "==> maturin build (dev profile) and pip install into a fresh virtualenv"
"$cache/maturin-venv/bin/maturin" build --quiet --profile dev --out "$install_dir/wheels"
python3 -m venv "$install_dir/venv"
"$install_dir/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$install_dir"/wheels/wxcube-*.whl
export WXCUBE_INSTALLED="$install_dir/venv/bin"
# -------------------------------------------------------------------------------------------------

echo "==> cargo fmt --all --check"
cargo fmt --all --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo clippy --test tools --quiet -- -D warnings
echo "==> cargo test (everything that needs nothing but Rust)"
cargo test --workspace --all-targets
echo "==> cargo package --workspace (each crate built from its packaged sources alone)"
# (--allow-dirty: a developer's uncommitted changes are what gets packaged and checked.)
cargo package --workspace --quiet --allow-dirty
echo "==> cargo install --path ."
# In the build's own target folder, so that nothing is compiled twice.
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
cargo install --quiet --debug --locked --path . --root "$install_dir/cargo" --target-dir "$target_dir"
"$install_dir/cargo/bin/wxcube" --version
echo "==> cargo test --test tools (DuckDB, PySpark, moto, Airflow, the Delta readers, the wheel)"
# Three at a time: each starts its own moto server or JVM, and on two cores more of them at once
# starved moto until it stopped accepting connections within object_store's connect timeout.
cargo test --test tools -- --test-threads 3
