"""Reads a wxcube output folder with DuckDB and prints what DuckDB sees, as JSON.

Usage: duckdb_check.py <output dir> <appid> <table>=<date> [<table>=<date> ...]

For each table: the column types DuckDB infers (with hive partitioning, so ref_date comes from
the path), the row count, the sum of every integer column (nulls left out), for every list
column the number of elements and the sum of each integer field of its structs (through
UNNEST), and the rows of one cell selected with `WHERE ref_date = <date> AND appid = <appid>`
(partition pruning on the path and a filter on the file's column). The Rust test compares these
with the simulator's own data.
"""

import json
import sys

import duckdb


def main() -> None:
    root, appid, cells = sys.argv[1], sys.argv[2], sys.argv[3:]
    con = duckdb.connect()
    result = {}
    for table, date in (c.split("=") for c in cells):
        source = f"read_parquet('{root}/{table}/*/*.parquet', hive_partitioning = true)"
        # DuckDB quotes struct field names that are keywords ("position"): compared unquoted.
        types = {name: kind.replace('"', "") for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        sums = {}
        for column, kind in types.items():
            if kind in ("BIGINT", "INTEGER") and column != "ref_date":
                sums[column] = int(con.execute(f"SELECT coalesce(sum({column}), 0) FROM {source}").fetchone()[0])
        lists = {}
        for column, kind in types.items():
            if kind.startswith("STRUCT(") and kind.endswith("[]"):
                fields = [f.split(" ", 1) for f in kind[len("STRUCT("):-len(")[]")].split(", ")]
                ints = [name for name, ftype in fields if ftype == "BIGINT"]
                picked = ", ".join([f'coalesce(sum(s."{f}"), 0)' for f in ints] or ["0"])
                found = con.execute(
                    f"SELECT count(*), {picked} FROM (SELECT UNNEST({column}) AS s FROM {source})"
                ).fetchone()
                lists[column] = {"elements": found[0], "sums": {f: int(v) for f, v in zip(ints, found[1:])}}
        cell = con.execute(f"SELECT count(*) FROM {source} WHERE ref_date = ?::DATE AND appid = ?", [date, appid]).fetchone()
        result[table] = {"types": types, "rows": rows, "sums": sums, "lists": lists, "cell": {"rows": cell[0]}}
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
