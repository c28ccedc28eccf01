-- Passive-reply health per day (interface family): replies, failure rate and mean time, from
-- the folder `wxcube demo` writes (./wxcube-demo).
-- Run from the folder that holds wxcube-demo:   duckdb < examples/duckdb/interface_health.sql
SELECT ref_date,
       sum(callback_count)                                      AS replies,
       sum(fail_count)                                          AS failures,
       round(sum(fail_count) / nullif(sum(callback_count), 0), 4)   AS failure_rate,
       round(sum(total_time_cost) / nullif(sum(callback_count), 0), 1) AS mean_time_cost,
       max(max_time_cost)                                       AS worst_time_cost
FROM read_parquet('wxcube-demo/interface_summary/*/*.parquet', hive_partitioning = true)
GROUP BY ALL
ORDER BY ref_date DESC;
