"""Messages per message type from wxcube's output, with PySpark.

Run from the folder that holds `wxcube-demo` (written by `cargo run --release -- demo`):

    python examples/pyspark/read_tables.py

Spark discovers `ref_date` from the `ref_date=YYYY-MM-DD` folders as a DATE column; the files
themselves do not store it.
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


if __name__ == "__main__":
    spark = SparkSession.builder.appName("wxcube-example").getOrCreate()
    for row in messages_by_type(spark):
        print(f"{row.msg_type_label or row.msg_type:>6} {row.messages:>12} messages from {row.accounts} account(s)")
    spark.stop()
