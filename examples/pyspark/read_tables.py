"""Messages per message type, and article readers per read source, from wxcube's output, with
PySpark.

Run from the folder that holds `wxcube-demo` (written by `cargo run --release -- demo`):

    python examples/pyspark/read_tables.py

Spark discovers `ref_date` from the `ref_date=YYYY-MM-DD` folders as a DATE column; the files
themselves do not store it. List columns (`read_user_source`) are arrays of structs: `explode`
makes one row per element.
"""

from pyspark.sql import SparkSession
from pyspark.sql import functions as F


def messages_by_type(spark, root="wxcube-demo"):
    df = spark.read.parquet(f"{root}/upstream_msg")
    return (
        df.where(F.col("ref_date") >= F.lit("2014-12-01").cast("date"))
        .groupBy("msg_type", "msg_type_label")
        .agg(F.sum("msg_count").alias("messages"), F.countDistinct("appid").alias("accounts"))
        .orderBy(F.desc("messages"))
        .collect()
    )


def readers_by_source(spark, root="wxcube-demo"):
    """Readers of published articles per read source ("全部" is every source together)."""
    df = spark.read.parquet(f"{root}/article_read")
    return (
        df.select("msgid", F.explode("read_user_source").alias("s"))
        .groupBy(F.col("s.scene_desc").alias("scene_desc"))
        .agg(F.sum("s.user_count").alias("readers"), F.countDistinct("msgid").alias("articles"))
        .orderBy(F.desc("readers"))
        .collect()
    )


if __name__ == "__main__":
    spark = SparkSession.builder.appName("wxcube-example").getOrCreate()
    for row in messages_by_type(spark):
        print(f"{row.msg_type_label or row.msg_type:>6} {row.messages:>12} messages from {row.accounts} account(s)")
    for row in readers_by_source(spark):
        print(f"{row.scene_desc:>6} {row.readers:>12} readers of {row.articles} article(s)")
    spark.stop()
