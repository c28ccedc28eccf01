# Sourced by scripts/test.sh and benches/run.sh: cached Python virtualenvs, kept under
# ${WXCUBE_CACHE:-~/.cache/wxcube}, outside the clone.
cache="${WXCUBE_CACHE:-$HOME/.cache/wxcube}"
mkdir -p "$cache"

# The readers and servers the tests prove the output against (DuckDB, PySpark, moto); the
# benchmarks use its DuckDB.
venv="$cache/venv"

#   ensure_venv DIR REQUIREMENTS PROBE
#
# Builds DIR from REQUIREMENTS unless it was built from the same file and `DIR/bin/python -c PROBE`
# succeeds; a changed requirements file or a broken virtualenv is rebuilt from scratch.
ensure_venv() {
  local dir="$1" requirements="$2" probe="$3"
  local stamp="$dir/.requirements"
  if cmp -s "$requirements" "$stamp" && "$dir/bin/python" -c "$probe" 2>/dev/null; then
    return 0
  fi
  echo "==> installing $requirements into $dir" >&2
  rm -rf "$dir"
  python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  cp "$requirements" "$stamp"
}

ensure_readers() {
  ensure_venv "$venv" tests/requirements.txt 'import duckdb, moto, pyspark'
}

# The Delta Lake readers (delta-rs, Polars, DuckDB's delta extension), in a virtualenv of their
# own: the extension needs duckdb 1.4.4, the readers above pin a newer one. The probe loads the
# extension from the wheel duckdb-ext-delta installed, with downloads of extensions turned off.
# maturin, which builds the wheel (pyproject.toml).
ensure_maturin() {
  ensure_venv "$cache/maturin-venv" tests/install/requirements.txt 'import maturin'
}

ensure_delta_readers() {
  ensure_venv "$cache/delta-venv" tests/delta/requirements.txt \
    'import deltalake, polars, duckdb, duckdb_ext; duckdb_ext.init(duckdb.connect()).execute("LOAD delta")'
}
