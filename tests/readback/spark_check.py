"""Reads a wxcube output folder with Spark and prints what Spark sees, as JSON.

Usage: spark_check.py <output dir> <example.py> <table> [<table> ...]

One Spark session for everything (starting one costs seconds): for each table the schema Spark
infers with `spark.read.parquet(<table dir>)`, the row count and the sums of the count columns;
then the PySpark example from examples/, run against the same output.
"""

import json
import os
import runpy
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def main() -> None:
    root, example, tables = sys.argv[1], sys.argv[2], sys.argv[3:]
    spark = (
        SparkSession.builder.master("local[2]")
        .appName("wxcube-readback")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    result = {}
    for table in tables:
        df = spark.read.parquet(f"{root}/{table}")
        types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
        sums = [c for c in ("msg_user", "msg_count") if c in types]
        agg = df.agg(F.count(F.lit(1)).alias("rows"), *[F.sum(c).alias(c) for c in sums]).collect()[0]
        result[table] = {"types": types, "rows": agg["rows"], "sums": {c: int(agg[c] or 0) for c in sums}}
    # The JVM resolves relative paths against its own start folder: give the example an
    # absolute one.
    rows = runpy.run_path(example)["messages_by_type"](spark, os.path.abspath(root))
    result["example"] = [{"msg_type": r["msg_type"], "messages": r["messages"], "accounts": r["accounts"]} for r in rows]
    spark.stop()
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
