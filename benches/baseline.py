#!/usr/bin/env python3
"""What users would run instead of wxcube: the script a data engineer writes to pull the seven
message-analysis tables into Parquet, with the usual tools. benches/bench.py times it against
`wxcube extract` on the same simulator ("baseline" figure); it is meant to be plain and fair,
not slow on purpose.

- wechatpy for the API (token, datacube calls), one client per account;
- a thread pool with as many requests in flight as wxcube's default (8);
- each table's range cut into requests of at most the table's documented span; week and month
  tables asked for by the periods' first days (the Mondays, the 1sts), as the API wants;
- rows grouped per table, account and day, one Parquet file per account and day
  (<output>/<table>/ref_date=YYYY-MM-DD/<appid>.parquet), typed and labelled like wxcube's
  columns, ZSTD-compressed, written by pyarrow; no fsync, as a typical script does.

    baseline.py --config accounts.toml --api-base URL --begin D --end D --output DIR

accounts.toml is wxcube's (`[[account]] appid = …, secret_env = …`). The last line of stdout is
a JSON object: requests made, rows and files written, seconds. Any API error stops the run with
exit code 1: only a clean run counts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
import tomllib
from collections import defaultdict
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from importlib.metadata import version
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from wechatpy import WeChatClient

# The labels of the codes, from the API documentation.
MSG_TYPES = {1: "text", 2: "image", 3: "voice", 4: "video", 6: "link"}
COUNT_INTERVALS = {0: "0", 1: "1-5", 2: "6-10", 3: ">10"}

UTC_MICROS = pa.timestamp("us", tz="UTC")
MESSAGES = [
    pa.field("appid", pa.string(), nullable=False),
    pa.field("msg_type", pa.int32(), nullable=False),
    pa.field("msg_type_label", pa.string()),
    pa.field("msg_user", pa.int64(), nullable=False),
    pa.field("msg_count", pa.int64(), nullable=False),
    pa.field("extracted_at", UTC_MICROS, nullable=False),
]
HOURLY = MESSAGES[:1] + [
    pa.field("hour", pa.int32(), nullable=False),
    pa.field("ref_hour", pa.int32(), nullable=False),
] + MESSAGES[1:]
DISTRIBUTION = [
    pa.field("appid", pa.string(), nullable=False),
    pa.field("count_interval", pa.int32(), nullable=False),
    pa.field("count_interval_label", pa.string()),
    pa.field("msg_user", pa.int64(), nullable=False),
    pa.field("extracted_at", UTC_MICROS, nullable=False),
]

# table: (wechatpy method, period, longest request in days, columns). Spans from the API
# documentation (wxcube's schemas/*.toml give the same).
TABLES = {
    "upstream_msg": ("get_upstream_msg", "day", 7, pa.schema(MESSAGES)),
    "upstream_msg_hour": ("get_upstream_msg_hour", "day", 1, pa.schema(HOURLY)),
    "upstream_msg_week": ("get_upstream_msg_week", "week", 30, pa.schema(MESSAGES)),
    "upstream_msg_month": ("get_upstream_msg_month", "month", 30, pa.schema(MESSAGES)),
    "upstream_msg_dist": ("get_upstream_msg_dist", "day", 15, pa.schema(DISTRIBUTION)),
    "upstream_msg_dist_week": ("get_upstream_msg_dist_week", "week", 30, pa.schema(DISTRIBUTION)),
    "upstream_msg_dist_month": ("get_upstream_msg_dist_month", "month", 30, pa.schema(DISTRIBUTION)),
}


class Client(WeChatClient):
    """wechatpy's client for another API root (here the simulator). wechatpy keeps the roots in
    class attributes and asks for tokens at a fixed URL, so both are overridden."""

    def __init__(self, appid: str, secret: str, api_base: str):
        super().__init__(appid, secret, timeout=30)
        self.API_BASE_URL = f"{api_base}/cgi-bin/"
        self.datacube.API_BASE_URL = f"{api_base}/datacube/"

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=self.API_BASE_URL + "token",
            params={"grant_type": "client_credential", "appid": self.appid, "secret": self.secret},
        )


def period_starts(period: str, begin: dt.date, end: dt.date) -> list[dt.date]:
    """The days the API files rows under: every day, or the first day of each week or month that
    starts in the range and has ended by its end (the API answers a period once it has ended)."""
    days = [begin + dt.timedelta(days=i) for i in range((end - begin).days + 1)]
    if period == "week":
        return [d for d in days if d.weekday() == 0 and d + dt.timedelta(days=6) <= end]
    if period == "month":
        return [d for d in days if d.day == 1 and last_of_month(d) <= end]
    return days


def last_of_month(d: dt.date) -> dt.date:
    return (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)


def windows(period: str, span: int, begin: dt.date, end: dt.date) -> list[tuple[dt.date, dt.date]]:
    """Requests of at most `span` days that together contain every period start of the range: a
    week or a month comes with the request that contains its first day."""
    starts, out = period_starts(period, begin, end), []
    while starts:
        first = starts[0]
        inside = [d for d in starts if d < first + dt.timedelta(days=span)]
        out.append((first, inside[-1]))
        starts = starts[len(inside):]
    return out


def pull(client: Client, table: str, begin: dt.date, end: dt.date, output: Path,
         extracted_at: dt.datetime) -> tuple[int, int]:
    """One request, and a Parquet file per day it returned rows for. Returns (rows, files)."""
    method, _, _, schema = TABLES[table]
    rows = getattr(client.datacube, method)(begin, end)
    by_day = defaultdict(list)
    for r in rows:
        r["appid"] = client.appid
        r["extracted_at"] = extracted_at
        if "msg_type" in r:
            r["msg_type_label"] = MSG_TYPES.get(r["msg_type"])
        if "count_interval" in r:
            r["count_interval_label"] = COUNT_INTERVALS.get(r["count_interval"])
        if "ref_hour" in r:
            r["hour"] = r["ref_hour"] // 100  # the API sends 0, 100, …, 2300
        by_day[r["ref_date"]].append(r)
    for day, day_rows in by_day.items():
        folder = output / table / f"ref_date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        # from_pylist takes the schema's fields from each row and leaves the rest (ref_date is
        # in the path; the API's undocumented user_source is not wanted).
        pq.write_table(pa.Table.from_pylist(day_rows, schema=schema), folder / f"{client.appid}.parquet",
                       compression="zstd")
    return len(rows), len(by_day)


def read_accounts(path: Path) -> list[tuple[str, str]]:
    with open(path, "rb") as f:
        accounts = tomllib.load(f)["account"]
    return [(a["appid"], os.environ[a["secret_env"]]) for a in accounts]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, type=Path)
    p.add_argument("--api-base", required=True)
    p.add_argument("--begin", required=True, type=dt.date.fromisoformat)
    p.add_argument("--end", required=True, type=dt.date.fromisoformat)
    p.add_argument("--output", required=True, type=Path)
    p.add_argument("--concurrency", type=int, default=8)
    args = p.parse_args()

    started = time.perf_counter()
    clients = [Client(appid, secret, args.api_base) for appid, secret in read_accounts(args.config)]
    # One token per account before the threads start, so they do not all ask for one at once.
    for c in clients:
        c.fetch_access_token()
    extracted_at = dt.datetime.now(dt.timezone.utc)
    jobs = [(c, table, b, e) for c in clients for table, (_, period, span, _) in TABLES.items()
            for b, e in windows(period, span, args.begin, args.end)]

    with ThreadPoolExecutor(args.concurrency) as pool:
        futures = [pool.submit(pull, *job, args.output, extracted_at) for job in jobs]
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
    errors = [f.exception() for f in done if f.exception() is not None]
    finished = [f.result() for f in done if f.exception() is None]
    summary = {
        "status": "failed" if errors else "ok",
        "requests": len(finished) + len(errors),
        "rows": sum(rows for rows, _ in finished),
        "files_written": sum(files for _, files in finished),
        "seconds": round(time.perf_counter() - started, 3),
        "wechatpy": version("wechatpy"),
        "pyarrow": pa.__version__,
    }
    if errors:
        summary["error"] = repr(errors[0])
        print(f"error: {errors[0]!r}", file=sys.stderr)
    print(json.dumps(summary), flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
