"""Reads a wxcube output folder with Spark and prints what Spark sees, as JSON.

Usage: spark_check.py <output dir> <example.py> <table> [<table> ...]

One Spark session for everything (starting one costs seconds): for each table the schema Spark
infers with `spark.read.parquet(<table dir>)`, the row count, the sums of the integer columns,
and for every list column the number of elements and the sums of their integer fields (through
`explode`); then the PySpark examples from examples/, run against the same output.
"""

import json
import os
import runpy
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, IntegerType, LongType, StructType


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
        ints = [f.name for f in df.schema.fields if isinstance(f.dataType, (IntegerType, LongType))]
        agg = df.agg(F.count(F.lit(1)).alias("rows"), *[F.sum(c).alias(c) for c in ints]).collect()[0]
        lists = {}
        for f in df.schema.fields:
            if isinstance(f.dataType, ArrayType) and isinstance(f.dataType.elementType, StructType):
                fields = [x.name for x in f.dataType.elementType.fields if isinstance(x.dataType, LongType)]
                exploded = df.select(F.explode(f.name).alias("s"))
                got = exploded.agg(F.count(F.lit(1)).alias("n"), *[F.sum(f"s.{x}").alias(x) for x in fields]).collect()[0]
                lists[f.name] = {"elements": got["n"], "sums": {x: int(got[x] or 0) for x in fields}}
        result[table] = {
            "types": types,
            "rows": agg["rows"],
            "sums": {c: int(agg[c] or 0) for c in ints},
            "lists": lists,
        }
    # The JVM resolves relative paths against its own start folder: give the examples an
    # absolute one.
    examples = runpy.run_path(example)
    rows = examples["messages_by_type"](spark, os.path.abspath(root))
    result["example"] = [{"msg_type": r["msg_type"], "messages": r["messages"], "accounts": r["accounts"]} for r in rows]
    rows = examples["readers_by_source"](spark, os.path.abspath(root))
    result["readers_by_source"] = {r["scene_desc"]: r["readers"] for r in rows}
    spark.stop()
    json.dump(result, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
