-- Messages per day and type, from the folder `wxcube demo` writes (./wxcube-demo).
-- Run from the folder that holds wxcube-demo:   duckdb < examples/duckdb/daily_messages.sql
-- ref_date comes from the partition path; hive_partitioning makes it a DATE column.
SELECT ref_date,
       msg_type_label,
       count(DISTINCT appid) AS accounts,
       sum(msg_user)         AS users,
       sum(msg_count)        AS messages
FROM read_parquet('wxcube-demo/upstream_msg/*/*.parquet', hive_partitioning = true)
WHERE ref_date >= DATE '2014-12-01'
GROUP BY ALL
ORDER BY ref_date DESC, messages DESC;
