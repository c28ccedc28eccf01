"""wxcube_daily: the WeChat datacube tables into Parquet or Delta Lake, every morning (Airflow 3.3+).

One mapped task per shard runs

    wxcube extract --config accounts.toml --output OUT --incremental --start-date D --shard I/N

and pushes wxcube's run summary (the last line of its stdout, one JSON object) to XCom; a last
task adds the shards' summaries up. Shards split the accounts by output bucket, so N tasks run
in parallel and never write the same file.

Settings come from the environment, so the same file serves production and the test suite
(tests/it/airflow.rs); none is a secret:

    WXCUBE_BIN         the wxcube binary                      [wxcube, from PATH]
    WXCUBE_CONFIG      the accounts file                      [/etc/wxcube/accounts.toml]
    WXCUBE_OUTPUT      a folder or s3://bucket/prefix         [/data/wxcube]
    WXCUBE_START_DATE  where an account without state starts  [30 days before the run's day]
    WXCUBE_SHARDS      parallel tasks (a new output gets that many buckets, so
                       more shards later need --buckets set now)   [4]
    WXCUBE_FORMAT      parquet (Hive-style folders) or delta (Delta Lake tables),
                       fixed when the output is first written      [parquet]
    WECHAT_API_BASE    the API root                           [https://api.weixin.qq.com]
    WXCUBE_EXTRA_ARGS  more flags, e.g. "--concurrency 4"     []

The app secrets never appear here: accounts.toml names, per account, the environment variable
that holds its secret (`secret_env = "..."`), and `append_env=True` hands the worker's
environment (where your deployment puts those variables, and AWS_* for S3) down to wxcube.
"""

from __future__ import annotations

import json
import os
import re
from datetime import timedelta

import pendulum

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, RetryDecision, RetryPolicy, task
from airflow.sdk.exceptions import AirflowFailException

# Read where the file is parsed, by the DAG processor and by each worker: set them alike on both
# (WXCUBE_SHARDS shapes the DAG itself). A worker's own environment reaches wxcube as well.
SHARDS = int(os.environ.get("WXCUBE_SHARDS", "4"))
ENV = {
    "WXCUBE_BIN": os.environ.get("WXCUBE_BIN", "wxcube"),
    "WXCUBE_CONFIG": os.environ.get("WXCUBE_CONFIG", "/etc/wxcube/accounts.toml"),
    "WXCUBE_OUTPUT": os.environ.get("WXCUBE_OUTPUT", "/data/wxcube"),
    # Only accounts (and tables) with no state yet start here; the rest carry on from theirs.
    "WXCUBE_START_DATE": os.environ.get("WXCUBE_START_DATE", "{{ macros.ds_add(ds, -30) }}"),
    "WXCUBE_FORMAT": os.environ.get("WXCUBE_FORMAT", "parquet"),
    "WECHAT_API_BASE": os.environ.get("WECHAT_API_BASE", "https://api.weixin.qq.com"),
    "WXCUBE_EXTRA_ARGS": os.environ.get("WXCUBE_EXTRA_ARGS", ""),
}

# Why --incremental, not --begin/--end from the data interval: wxcube keeps per (account,
# table) state under <output>/_wxcube/, so each run fetches from where the last one ended (less
# --lookback-days, since the API fills late days in) up to the latest complete day. A run that
# failed or was skipped is caught up by the next one without a backfill, a cleared task is
# harmless to re-run, and the week and month tables come out right: their periods are fetched
# once they have ended, which a one-day --begin/--end window of each run would never cover.
# So one run per day is enough and catchup is off.
#
# Why --lease-wait-secs: a run leases the accounts and tables it works on, and another run of
# the same ones (yesterday's, still going; or this task's previous try, killed by the worker
# and holding its lease until --lease-secs lapse, on S3) would otherwise exit 2 at once, which
# is not retried. It waits for the lease instead, then does its work. (Delta tables take no
# lease: their shards and runs commit optimistically, and the flag does nothing there.)
COMMAND = (
    'exec "$WXCUBE_BIN" extract --config "$WXCUBE_CONFIG" --output "$WXCUBE_OUTPUT"'
    ' --incremental --start-date "$WXCUBE_START_DATE" --lookback-days 3 --shard "$WXCUBE_SHARD"'
    ' --format "$WXCUBE_FORMAT" --lease-wait-secs 900 $WXCUBE_EXTRA_ARGS'
)


class RetryPartialOnly(RetryPolicy):
    """Retry exit 1 (some cells failed: a re-run fills exactly those), never exit 2 (bad
    configuration or refused credentials: a retry would fail the same way).

    BashOperator reports the exit code only in its exception's message, "... non-zero exit
    code N."; the test suite checks that this still tells 1 from 2 (tests/airflow/run_dag.py).
    """

    def evaluate(self, exception, try_number, max_tries, context=None):
        if re.search(r"\bexit code 2\b", str(exception)):
            return RetryDecision.fail("wxcube exited 2: fix the configuration, a retry cannot help")
        return RetryDecision.default()


with DAG(
    dag_id="wxcube_daily",
    # 09:00 Beijing: the API publishes yesterday at 08:00.
    schedule=CronDataIntervalTimetable("0 9 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2024, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,  # two runs at once would write the same files
    tags=["wxcube", "wechat"],
    doc_md=__doc__,
):
    extract = BashOperator.partial(
        task_id="extract",
        bash_command=COMMAND,
        append_env=True,  # keep the worker's environment (the secrets' variables, AWS_*)
        # The last line of output, the summary, becomes the XCom value, as a dict. (BashOperator
        # reads stdout and stderr as one stream; wxcube writes nothing after the summary.)
        do_xcom_push=True,
        output_processor=json.loads,
        map_index_template="shard {{ task.env['WXCUBE_SHARD'] }}",
        retries=2,  # for exit 1 only: see RetryPartialOnly
        retry_delay=timedelta(minutes=10),
        retry_policy=RetryPartialOnly(),
        execution_timeout=timedelta(hours=6),
    ).expand(env=[{**ENV, "WXCUBE_SHARD": f"{i}/{SHARDS}"} for i in range(SHARDS)])

    @task  # (no "-> dict" annotation: Airflow would push each key as an XCom of its own)
    def report(summaries):
        """Adds the shards' summaries up; its XCom is the run's figures.

        It runs only when every shard succeeded (exit 0, status ok), since a shard that still
        fails after its retries fails the run on its own. So this task just aggregates; the
        check below guards against a summary that says otherwise.
        """
        summaries = list(summaries)
        total = {"shards": len(summaries), "accounts": 0, "rows": 0, "failures": 0, "tables": {}}
        for s in summaries:
            total["accounts"] += s["accounts"]
            total["rows"] += s["rows"]
            total["failures"] += s["failures"]
            for name, t in s["tables"].items():
                total["tables"][name] = total["tables"].get(name, 0) + t["rows"]
        bad = [s.get("shard") for s in summaries if s["status"] != "ok" or s["failures"]]
        if bad:
            raise AirflowFailException(f"shards {bad} did not write everything: see their summaries")
        return total

    report(extract.output)
