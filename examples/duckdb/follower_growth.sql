-- Follower growth per day (user family): gains, losses and net by follow channel, and the
-- account's total, from the folder `wxcube demo` writes (./wxcube-demo).
-- Run from the folder that holds wxcube-demo:   duckdb < examples/duckdb/follower_growth.sql
-- user_source 0 is "every other channel", not a grand total: summing the channels is right.
WITH growth AS (
    SELECT appid, ref_date,
           sum(new_user)                AS new_users,
           sum(cancel_user)             AS lost_users,
           sum(new_user - cancel_user)  AS net,
           arg_max(user_source_label, new_user) AS top_channel
    FROM read_parquet('wxcube-demo/user_summary/*/*.parquet', hive_partitioning = true)
    GROUP BY ALL
)
SELECT g.appid, g.ref_date, g.new_users, g.lost_users, g.net, g.top_channel, c.cumulate_user AS followers
FROM growth g
LEFT JOIN read_parquet('wxcube-demo/user_cumulate/*/*.parquet', hive_partitioning = true) c USING (appid, ref_date)
ORDER BY g.appid, g.ref_date;
