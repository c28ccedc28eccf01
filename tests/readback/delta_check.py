"""Reads a wxcube Delta table with three independent readers and writes what each saw as Parquet.

Usage: delta_check.py <table> <out dir> [--version N] [--readers deltalake,polars,duckdb]

Reads the Delta table <table> (a local folder, or s3://bucket/prefix with the AWS_* variables of
the environment: deltalake only), at its latest version or, with --version, at table version N
(time travel), with:

- deltalake (delta-rs): DeltaTable(...).to_pyarrow_table(), written to <out dir>/deltalake.parquet
  by pyarrow;
- Polars: polars.read_delta, written to <out dir>/polars.parquet by Polars;
- DuckDB: the delta extension's delta_scan, written to <out dir>/duckdb.parquet by DuckDB's
  COPY ... TO ... (FORMAT parquet). delta_scan takes no version (it has no such parameter, and a
  table function takes no AT clause), so with --version DuckDB reads the table through the same
  extension as `ATTACH ... (TYPE delta, VERSION N)`.

Every column of the table, the partition column ref_date included, is in each file, in the order
and with the Arrow types deltalake gives the table's schema (Polars' large strings and lists are
cast back), so that the Rust test reads all three files alike. A Delta data
file does not hold its partition column: deltalake and DuckDB take ref_date from the log's
partitionValues, Polars (its native reader) from the file's path, `ref_date=YYYY-MM-DD/`, and
when the path has none Polars reads ref_date as null. Polars also fails to find the data files
when <table dir> holds a space (deltalake hands it percent-encoded paths).

Then prints one JSON line: the rows each reader saw, the version deltalake loaded, and, as
deltalake reports them, the table's columns in schema order, its partition columns and its
properties (configuration):

  {"deltalake": {"rows": n, "version": v}, "polars": {"rows": n}, "duckdb": {"rows": n},
   "columns": [...], "partition_columns": [...], "configuration": {...}}

Exits non-zero with one line on stderr if any reader fails. The Rust test compares the three
files with the rows wxcube wrote.

Each reader's module is imported only when it is asked for. The delta extension comes from the
pip package duckdb-ext-delta (tests/delta/requirements.txt), loaded through duckdb_ext.init,
which points DuckDB's extension directory at the package and turns off installing extensions:
nothing is downloaded.
"""

import argparse
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def storage_options(table_dir):
    """S3: the endpoint and keys from the environment, as wxcube takes them."""
    if not table_dir.startswith("s3://"):
        return None
    names = ["AWS_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ALLOW_HTTP"]
    return {name: os.environ[name] for name in names if name in os.environ}


def read_deltalake(table_dir, version, out):
    from deltalake import DeltaTable

    table = DeltaTable(table_dir, version=version, storage_options=storage_options(table_dir))
    data = table.to_pyarrow_table()
    pq.write_table(data, out)
    metadata = table.metadata()
    return {
        "rows": data.num_rows,
        "version": table.version(),
        "columns": [field.name for field in table.schema().fields],
        "partition_columns": list(metadata.partition_columns),
        "configuration": dict(metadata.configuration),
    }


def read_polars(table_dir, version, out):
    import polars

    frame = polars.read_delta(table_dir, version=version)
    frame.write_parquet(out)
    return {"rows": frame.height}


def read_duckdb(table_dir, version, out):
    import duckdb
    import duckdb_ext

    con = duckdb_ext.init(duckdb.connect())
    con.execute("LOAD delta")
    if version is None:
        source = f"delta_scan({quote(table_dir)})"
    else:
        con.execute(f"ATTACH {quote(table_dir)} AS delta_table (TYPE delta, VERSION {version})")
        source = "delta_table"
    # COPY answers with the number of rows it wrote.
    rows = con.execute(f"COPY (SELECT * FROM {source}) TO {quote(out)} (FORMAT parquet)").fetchone()[0]
    return {"rows": rows}


def quote(text):
    return "'" + text.replace("'", "''") + "'"


def conform(path, schema):
    """Rewrites the Parquet file at `path` with `schema`'s column order and types."""
    data = pq.read_table(path).select(schema.names)
    # Uncompressed: the Rust test's parquet crate is built with ZSTD only.
    pq.write_table(data.cast(pa.schema([field.with_nullable(True) for field in schema])), path, compression="none")


def main() -> None:
    parser = argparse.ArgumentParser(description="Reads a Delta table with deltalake, Polars and DuckDB.")
    parser.add_argument("table_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--version", type=int, help="read the table at this version (time travel)")
    parser.add_argument("--readers", default="deltalake,polars,duckdb", help="comma-separated; deltalake first")
    args = parser.parse_args()
    readers = args.readers.split(",")
    os.makedirs(args.out_dir, exist_ok=True)

    result, failures = {}, []
    for name, read in (("deltalake", read_deltalake), ("polars", read_polars), ("duckdb", read_duckdb)):
        if name not in readers:
            continue
        try:
            result[name] = read(args.table_dir, args.version, os.path.join(args.out_dir, f"{name}.parquet"))
        except Exception as error:
            # One line: DuckDB's messages run over several.
            failures.append(f"{name}: {type(error).__name__}: {' '.join(str(error).split())}")
    if failures:
        sys.exit("delta_check.py: " + "; ".join(failures))
    schema = pq.read_schema(os.path.join(args.out_dir, "deltalake.parquet"))
    for name in readers:
        conform(os.path.join(args.out_dir, f"{name}.parquet"), schema)

    for key in ("columns", "partition_columns", "configuration"):
        result[key] = result["deltalake"].pop(key)
    json.dump(result, sys.stdout, sort_keys=True)
    print(flush=True)
    # Every file is written and closed. Skipping the interpreter's teardown: with the readers'
    # native thread pools alive, it once ended in "terminate called without an active
    # exception" (an abort) after a successful read.
    os._exit(0)


if __name__ == "__main__":
    main()
