"""Reads a wxcube output folder with DuckDB and prints what DuckDB sees, as JSON.

Usage: duckdb_check.py <output dir> <appid> <table>=<date> [<table>=<date> ...]

For each table: the column types DuckDB infers (with hive partitioning, so ref_date comes from
the path), the row count, the sum of every count column, and the rows and msg_user sum of one
cell selected with `WHERE ref_date = <date> AND appid = <appid>` (partition pruning on the path
and a filter on the file's column). The Rust test compares these with the simulator's own data.
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
        types = {name: kind for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
        rows = con.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        sums = {}
        for column in ("msg_user", "msg_count"):
            if column in types:
                sums[column] = int(con.execute(f"SELECT sum({column}) FROM {source}").fetchone()[0] or 0)
        days = con.execute(f"SELECT count(DISTINCT ref_date), min(ref_date)::VARCHAR, max(ref_date)::VARCHAR FROM {source}").fetchone()
        cell = con.execute(
            f"SELECT count(*), coalesce(sum(msg_user), 0) FROM {source} WHERE ref_date = ?::DATE AND appid = ?", [date, appid]
        ).fetchone()
        result[table] = {
            "types": types,
            "rows": rows,
            "sums": sums,
            "dates": days[0],
            "min_date": days[1],
            "max_date": days[2],
            "cell": {"rows": cell[0], "msg_user": int(cell[1])},
        }
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
