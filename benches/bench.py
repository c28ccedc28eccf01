#!/usr/bin/env python3
"""wxcube's benchmarks: every figure next to the baseline it is compared to, measured in the same
run on the same machine. Run it through benches/run.sh, which builds the release binary and
provides DuckDB and wrk; see README, "Performance".

Each figure is a ratio of two measurements taken here, never a stored number:

  client overhead   wxcube extract req/s (plan, fetch, decode, normalize, write to local disk)
                    ÷ wrk replaying the same requests against the same simulator at the same
                    concurrency
  latency hiding    wxcube extract req/s with 50 ms added to every answer ÷ C / 50 ms
  fewest calls      requests the run made (summary, and as counted by the simulator)
                    ÷ the fewest that cover the range, computed here from the schemas
  normalize + write `wxcube rebuild` time ÷ DuckDB COPY … PARTITION_BY of the same raw answers,
                    for 20 accounts × 1 year ("rebuild") and 1 account × 6 years ("rebuild6y":
                    many small files)
  memory            peak RSS of extract, at a small and a large range (flatness = large ÷ small)
  reader cost       DuckDB scan of wxcube's hour table ÷ the same rows, one file per partition
  baseline          the Python script users would write instead (benches/baseline.py: wechatpy,
                    pyarrow, 8 threads, one file per account and day) ÷ wxcube extract, wall
                    time, for 1 account × 6 years and 20 accounts × 1 year
  durability        wxcube extract with the output on the work folder's disk ÷ on tmpfs, wall
                    time, for the same two workloads: what making every file durable costs

Scale knobs (environment): WXCUBE_BENCH_ACCOUNTS (20), WXCUBE_BENCH_READER_ACCOUNTS (200),
WXCUBE_BENCH_MANY_ACCOUNTS (1000), WXCUBE_BENCH_CONCURRENCY (8),
WXCUBE_BENCH_LATENCY_CONCURRENCY ("8,32"), WXCUBE_BENCH_WRK_SECS (10), and for baseline,
durability and rebuild6y WXCUBE_BENCH_LONG_MONTHS (72: the 1-account workload's months, ending
2024-12) and WXCUBE_BENCH_WIDE_MONTHS (12: the WXCUBE_BENCH_ACCOUNTS workload's). A figure run at
another scale than the targets' says so in its row.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import glob
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import tomllib
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The simulator's "today" is pinned, so every run plans and gets the same data. The latest
# complete day is then 2024-12-31 and "a year" is 2024 (366 days: a leap year).
TODAY = dt.date(2025, 1, 2)
YEAR = (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
THREE_YEARS = (dt.date(2022, 1, 1), dt.date(2024, 12, 31))
MONTH = (dt.date(2024, 12, 2), dt.date(2024, 12, 31))  # 30 days
WEEK = (dt.date(2024, 12, 25), dt.date(2024, 12, 31))  # 7 days
LATENCY_MS = 50
DATA_FLOOR = dt.date(2014, 12, 1)

ALL_FIGURES = ["overhead", "latency", "calls", "rebuild", "rebuild6y", "memory", "reader", "baseline", "durability"]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


ACCOUNTS = env_int("WXCUBE_BENCH_ACCOUNTS", 20)
READER_ACCOUNTS = env_int("WXCUBE_BENCH_READER_ACCOUNTS", 200)
MANY_ACCOUNTS = env_int("WXCUBE_BENCH_MANY_ACCOUNTS", 1000)
CONCURRENCY = env_int("WXCUBE_BENCH_CONCURRENCY", 8)
LATENCY_CONCURRENCY = [int(c) for c in os.environ.get("WXCUBE_BENCH_LATENCY_CONCURRENCY", "8,32").split(",")]
WRK_SECS = env_int("WXCUBE_BENCH_WRK_SECS", 10)
LONG_MONTHS = env_int("WXCUBE_BENCH_LONG_MONTHS", 72)  # 1 account x 6 years
WIDE_MONTHS = env_int("WXCUBE_BENCH_WIDE_MONTHS", 12)  # ACCOUNTS x 1 year
CLK_TCK = os.sysconf("SC_CLK_TCK")
GNU_TIME = "/usr/bin/time"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Demo accounts and the independent planner


def appid(i: int) -> str:
    return f"wxdemo{i:012d}"


def secret(i: int) -> str:
    return f"demosecret{i:022d}"


def secret_env(i: int) -> str:
    return f"WXCUBE_BENCH_SECRET_{i}"


def schemas() -> dict[str, dict]:
    """The message family's tables: the workloads (and the Python baseline) are its seven."""
    tables = {}
    for f in sorted(glob.glob(str(ROOT / "schemas" / "*.toml"))):
        with open(f, "rb") as fh:
            t = tomllib.load(fh)
        if t["family"] == "message":
            tables[t["name"]] = t
    return tables


def month_end(d: dt.date) -> dt.date:
    nxt = (d.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return nxt - dt.timedelta(days=1)


def last_months(months: int) -> tuple[dt.date, dt.date]:
    """The `months` calendar months up to December 2024 (72: 2019-01-01..2024-12-31)."""
    end = YEAR[1]
    first = end.year * 12 + end.month - months  # months since year 0, zero-based
    return dt.date(first // 12, first % 12 + 1, 1), end


def range_text(months: int) -> str:
    return f"{months // 12} y" if months % 12 == 0 else f"{months} mo"


def fewest_requests(tables: dict[str, dict], begin: dt.date, end: dt.date, latest: dt.date) -> dict[str, int]:
    """The fewest windows per table that cover the periods starting in [begin, end], from the
    API's rules alone (README, "How it works"): a window spans at most the table's span; week and
    month tables need the first day of each *ended* period in the range. Greedy covering of
    points by fixed-length intervals is optimal; this is written from the rules, not from
    src/plan.rs, so a planner that made one request too many would show here."""
    out = {}
    for name, t in tables.items():
        starts = []
        d = max(begin, DATA_FLOOR)
        while d <= end:
            period = t["period"]
            if period in ("day", "hour"):
                ok = d <= latest
            elif period == "week":
                ok = d.weekday() == 0 and d + dt.timedelta(days=6) <= latest
            elif period == "month":
                ok = d.day == 1 and month_end(d) <= latest
            else:
                raise SystemExit(f"schemas/{name}.toml: unknown period {period!r}")
            if ok:
                starts.append(d)
            d += dt.timedelta(days=1)
        windows, i = 0, 0
        while i < len(starts):
            reach = starts[i] + dt.timedelta(days=t["max_span_days"] - 1)
            while i < len(starts) and starts[i] <= reach:
                i += 1
            windows += 1
        out[name] = windows
    return out


# ---------------------------------------------------------------------------------------------
# Processes


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_busy() -> tuple[float, float]:
    """CPU seconds the whole machine has been busy (all processes), and stolen by the hypervisor."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def own_cpu() -> float:
    """CPU seconds of this process and every child it has waited for (GNU time waits for the
    command it runs, so wxcube and wrk are in; a simulator is in once it has stopped)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Simulator:
    def __init__(self, url: str, proc: subprocess.Popen):
        self.url = url
        self.proc = proc

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/_sim/stats", timeout=60) as r:
            return json.load(r)

    def reset_stats(self) -> None:
        urllib.request.urlopen(urllib.request.Request(self.url + "/_sim/stats", method="DELETE"), timeout=60).read()

    def token(self, i: int) -> str:
        body = json.dumps({"grant_type": "client_credential", "appid": appid(i), "secret": secret(i)}).encode()
        req = urllib.request.Request(
            self.url + "/cgi-bin/stable_token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            answer = json.load(r)
        if "access_token" not in answer:
            raise SystemExit(f"simulator refused the token of {appid(i)}: {answer}")
        return answer["access_token"]


@contextmanager
def simulator(bench: "Bench", accounts: int, latency_ms: int = 0, cpus: str | None = None):
    cmd = pinned(cpus) + [str(bench.bin), "simulate", "--port", "0", "--today", TODAY.isoformat(), "--accounts", str(accounts)]
    if latency_ms:
        cmd += ["--latency-ms", str(latency_ms)]
    errlog = open(bench.work / f"simulate-{accounts}-{latency_ms}ms.log", "ab")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errlog, start_new_session=True)
    try:
        line = proc.stdout.readline().decode().strip()
        m = re.match(r"listening on (http://\S+)", line)
        if not m:
            raise SystemExit(f"simulator did not start: {line!r}; see {errlog.name}")
        yield Simulator(m.group(1), proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        errlog.close()


def fastest(runs: list[dict]) -> dict | None:
    """The run with the shortest wall time (best of N), or None when there was none."""
    return min(runs, key=lambda r: r["wall"]) if runs else None


def pinned(cpus: str | None) -> list[str]:
    """The prefix that runs a command on the given CPUs only (none: anywhere)."""
    return ["taskset", "-c", cpus] if cpus else []


def run_measured(cmd: list[str], env: dict | None, stdout_path: Path, stderr_path: Path) -> dict:
    """Runs a command to completion under GNU time; returns its wall time, exit code, peak RSS
    and CPU. (Not the harness's own wait4: a child forked from this Python process inherits its
    peak RSS across exec, which would report this process's size rather than wxcube's.)"""
    subprocess.run(["sync"], check=True)  # earlier phases' dirty pages are not this run's to write
    usage = stdout_path.with_suffix(".time")
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        start = time.perf_counter()
        code = subprocess.run([GNU_TIME, "-f", "%M %U %S", "-o", str(usage), *cmd], env=env, stdout=out,
                              stderr=err).returncode
        wall = time.perf_counter() - start
    maxrss_kb, user, system = usage.read_text().strip().splitlines()[-1].split()
    return {"wall": wall, "code": code, "maxrss_kb": int(maxrss_kb), "user": float(user), "sys": float(system)}


# ---------------------------------------------------------------------------------------------
# The bench


class Bench:
    def __init__(self, bin_path: Path, work: Path, baseline_python: Path | None = None):
        self.bin = bin_path
        self.work = work
        self.baseline_python = baseline_python
        self.baseline_versions = ""
        self.tables = schemas()
        self.rows: list[dict] = []
        self.notes: list[str] = []
        self.runs: list[dict] = []
        self.latest = TODAY - dt.timedelta(days=1)
        self.cleanup: list[Path] = []
        self.busy_at_start, self.steal_at_start = cpu_busy()
        self.own_cpu_at_start = own_cpu()

    # -- helpers --------------------------------------------------------------------------

    def accounts_file(self, n: int) -> Path:
        path = self.work / f"accounts-{n}.toml"
        if not path.exists():
            with open(path, "w") as f:
                for i in range(1, n + 1):
                    f.write(f'[[account]]\nappid = "{appid(i)}"\nsecret_env = "{secret_env(i)}"\n\n')
        return path

    def env(self, n: int) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WXCUBE_BENCH_SECRET_")}
        env.pop("RUST_LOG", None)
        for i in range(1, n + 1):
            env[secret_env(i)] = secret(i)
        return env

    def extract_cmd(self, url: str, n: int, rng: tuple, out: Path, concurrency: int, extra=()) -> list[str]:
        cmd = [
            str(self.bin), "extract", "--config", str(self.accounts_file(n)), "--output", str(out),
            "--api-base", url, "--today", TODAY.isoformat(), "--begin", rng[0].isoformat(),
            "--end", rng[1].isoformat(), "--concurrency", str(concurrency),
        ]
        # Enough per-account slots that the global limit is the one that binds.
        per_account = max(4, -(-concurrency // n))
        tables = [] if "--tables" in extra else ["--tables", "message"]
        cmd += ["--account-concurrency", str(per_account), *tables, *extra]
        return cmd

    def extract(self, label: str, sim: Simulator, n: int, rng: tuple, concurrency: int,
                out: Path | None = None, extra=(), cpus: str | None = None) -> dict:
        """One `wxcube extract` run into a new folder; checks it succeeded and that it made
        exactly the requests the simulator saw. Outputs are only removed at the end of the bench:
        ext4 searches past recently deleted inodes when it allocates new ones, so deleting one
        run's thousands of files would slow the next run's file creation."""
        out = out or self.work / f"out-{label}"
        assert not out.exists(), out
        sim.reset_stats()
        cpu0 = sim.cpu()
        cmd = self.extract_cmd(sim.url, n, rng, out, concurrency, extra)
        log(f"{label}: {n} account(s), {rng[0]}..{rng[1]}, concurrency {concurrency}")
        r = run_measured(pinned(cpus) + cmd, self.env(n), self.work / f"{label}.stdout", self.work / f"{label}.stderr")
        r["sim_cpu"] = sim.cpu() - cpu0
        lines = (self.work / f"{label}.stdout").read_text().strip().splitlines()
        if r["code"] != 0 or not lines:
            tail = (self.work / f"{label}.stderr").read_text()[-2000:]
            raise SystemExit(f"{label}: wxcube extract exited {r['code']}:\n{tail}")
        summary = json.loads(lines[-1])
        # wxcube reports its own peak (VmHWM): GNU time's figure here came out inflated and
        # growing from run to run, carried over from this (large) harness process.
        if summary.get("peak_rss_kb"):
            r["maxrss_kb"] = summary["peak_rss_kb"]
        if summary.get("status") != "ok":
            raise SystemExit(f"{label}: run not clean: {lines[-1][:2000]}")
        stats = sim.stats()
        r.update(
            label=label, accounts=n, begin=rng[0].isoformat(), end=rng[1].isoformat(), concurrency=concurrency,
            requests=summary["requests"], planned=sum(t["planned"] for t in summary["tables"].values()),
            per_table={k: (v["planned"], v["requests"]) for k, v in summary["tables"].items()},
            sim_requests=stats["datacube_requests"], rows=summary["rows"], files_written=summary["files_written"],
            elapsed_ms=summary["elapsed_ms"], command=" ".join(cmd), out=str(out),
        )
        r["rps"] = r["requests"] / r["wall"]
        self.runs.append(r)
        log(f"{label}: {r['requests']} requests in {r['wall']:.2f} s = {r['rps']:.0f} req/s, "
            f"{r['files_written']} files, peak RSS {r['maxrss_kb'] / 1024:.1f} MB, "
            f"wxcube CPU {r['user']:.1f}+{r['sys']:.1f} s, simulator CPU {r['sim_cpu']:.1f} s")
        return r

    def request_file(self, sim: Simulator, n: int, rng: tuple) -> tuple[Path, int]:
        """The requests a run of n accounts over rng makes, from its own --dry-run plan, with a
        valid token per account; shuffled so any stretch has the run's mix of endpoints."""
        plan = subprocess.run(
            self.extract_cmd(sim.url, n, rng, self.work / "dry-run", CONCURRENCY) + ["--dry-run"],
            env=self.env(n), capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        endpoints = {name: t["endpoint"] for name, t in self.tables.items()}
        tokens = {i: sim.token(i) for i in range(1, n + 1)}
        lines = []
        for line in plan:
            parts = line.split("\t")
            if len(parts) < 3 or parts[0] not in endpoints:
                continue
            table, begin, end = parts[:3]
            members = int(parts[3]) if len(parts) > 3 else n
            body = json.dumps({"begin_date": begin, "end_date": end}, separators=(",", ":"))
            for i in range(1, members + 1):
                lines.append(f"/datacube/{endpoints[table]}?access_token={tokens[i]}\t{body}")
        random.Random(6).shuffle(lines)
        path = self.work / f"requests-{n}.tsv"
        path.write_text("\n".join(lines) + "\n")
        return path, len(lines)

    def wrk(self, label: str, sim: Simulator, requests: Path, concurrency: int, secs: int,
            cpus: str | None = None) -> dict:
        sim.reset_stats()
        cpu0 = sim.cpu()
        cmd = pinned(cpus) + ["wrk", "-t1", f"-c{concurrency}", f"-d{secs}s", "--timeout", "10s",
               "-s", str(ROOT / "benches" / "replay.lua"), sim.url, "--", str(requests)]
        r = run_measured(cmd, None, self.work / f"{label}.stdout", self.work / f"{label}.stderr")
        r["sim_cpu"] = sim.cpu() - cpu0
        text = (self.work / f"{label}.stdout").read_text()
        m = re.search(r"Requests/sec:\s+([\d.]+)", text)
        if r["code"] != 0 or not m:
            raise SystemExit(f"{label}: wrk failed ({r['code']}):\n{text}\n{(self.work / f'{label}.stderr').read_text()}")
        if "Non-2xx" in text or "Socket errors" in text:
            raise SystemExit(f"{label}: wrk saw errors:\n{text}")
        stats = sim.stats()
        bad = [q for q in stats["recent"] if q["errcode"] != 0 or q["status"] != 200]
        if bad:
            raise SystemExit(f"{label}: the simulator answered {len(bad)} of wrk's requests with an error: {bad[0]}")
        r.update(label=label, rps=float(m.group(1)), concurrency=concurrency, sim_requests=stats["datacube_requests"],
                 command=" ".join(cmd))
        self.runs.append(r)
        log(f"{label}: {r['rps']:.0f} req/s (wrk CPU {r['user'] + r['sys']:.1f} s, simulator CPU {r['sim_cpu']:.1f} s)")
        return r

    def row(self, figure, measured, baseline, ratio, target, ok, note=""):
        result = "PASS" if ok is True else "FAIL" if ok is False else ok
        self.rows.append(dict(figure=figure, measured=measured, baseline=baseline,
                              ratio=ratio if isinstance(ratio, str) else f"{ratio:.3f}",
                              target=target, result=result, note=note))

    def scale_note(self, n: int, wanted: int, months: int | None = None, wanted_months: int | None = None) -> str:
        scaled = []
        if n != wanted:
            scaled.append(f"{n} accounts, the target is set at {wanted}")
        if months != wanted_months:
            scaled.append(f"{range_text(months)}, the target is set at {range_text(wanted_months)}")
        return f" (scaled: {'; '.join(scaled)})" if scaled else ""

    # -- figures ---------------------------------------------------------------------------

    def overhead_and_calls(self, figures: list[str]) -> None:
        n = ACCOUNTS
        with simulator(self, n) as sim:
            requests, count = self.request_file(sim, n, YEAR)
            log(f"client overhead: {count} requests per run; wrk and wxcube alternate, best of 2 each")
            self.wrk("wrk-warmup", sim, requests, CONCURRENCY, 2)
            best_wrk, best_run = None, None
            for k in (1, 2):
                w = self.wrk(f"wrk-c{CONCURRENCY}-{k}", sim, requests, CONCURRENCY, WRK_SECS)
                e = self.extract(f"extract-c{CONCURRENCY}-{k}", sim, n, YEAR, CONCURRENCY)
                best_wrk = w if best_wrk is None or w["rps"] > best_wrk["rps"] else best_wrk
                best_run = e if best_run is None or e["rps"] > best_run["rps"] else best_run
            if "overhead" in figures:
                # Not figures: the same run with the disk's share taken out, to show where the
                # time goes (README, "Performance").
                diagnostics = []
                shm = Path("/dev/shm")
                if shm.is_dir() and os.access(shm, os.W_OK):
                    tmpfs_out = shm / f"wxcube-bench-{os.getpid()}"
                    self.cleanup.append(tmpfs_out)
                    diagnostics.append(("output on tmpfs (no disk, fsync free)", self.extract(
                        f"extract-c{CONCURRENCY}-tmpfs", sim, n, YEAR, CONCURRENCY, out=tmpfs_out)))
                diagnostics.append(("--buckets 16 (16 files per partition)", self.extract(
                    f"extract-c{CONCURRENCY}-buckets16", sim, n, YEAR, CONCURRENCY, extra=["--buckets", "16"])))
        pinned_runs = None
        if "overhead" in figures and (os.cpu_count() or 1) >= 2:
            # The API is remote in production: its CPU is not the client's. The same runs with the
            # simulator on CPU 0 and the client (wrk, or wxcube) on CPU 1 compare the two clients
            # without their sharing cores with the server.
            pinned_runs = self.pinned_overhead(n)
        if "overhead" in figures:
            # A diagnostic, not a target: wrk drops every answer, wxcube decodes, encodes and
            # makes each file durable (README, "Performance").
            self.row(
                f"  diagnostic: client overhead, {n} acct x 1 y x 7 tables, C={CONCURRENCY}, 0 ms",
                f"{best_run['rps']:.0f} req/s",
                f"wrk {best_wrk['rps']:.0f} req/s",
                best_run["rps"] / best_wrk["rps"], "-", "info",
                f"{best_run['requests']} requests, {best_run['files_written']} files in {best_run['wall']:.1f} s"
                + self.scale_note(n, 20),
            )
            for what, e in diagnostics:
                self.row(f"  diagnostic: same run, {what}", f"{e['rps']:.0f} req/s", f"wrk {best_wrk['rps']:.0f} req/s",
                         e["rps"] / best_wrk["rps"], "-", "info", f"{e['files_written']} files in {e['wall']:.1f} s")
            # What the two clients and the server spend per request: on 2 shared cores the
            # throughput ratio tends to (wrk + simulator) / (wxcube + simulator).
            us = lambda cpu, reqs: cpu / reqs * 1e6  # noqa: E731
            x, xs = us(best_run["user"] + best_run["sys"], best_run["requests"]), us(best_run["sim_cpu"], best_run["requests"])
            w, ws = us(best_wrk["user"] + best_wrk["sys"], best_wrk["sim_requests"]), us(best_wrk["sim_cpu"], best_wrk["sim_requests"])
            self.row("  diagnostic: CPU per request", f"wxcube {x:.0f} + sim {xs:.0f} us", f"wrk {w:.0f} + sim {ws:.0f} us",
                     (w + ws) / (x + xs), "-", "info",
                     "client + server CPU per request; 0.8 of wrk on shared cores needs wxcube <= "
                     f"{(w + ws) / 0.8 - xs:.0f} us")
            if pinned_runs:
                pw, pe = pinned_runs
                self.row("  diagnostic: simulator on CPU 0, client on CPU 1", f"{pe['rps']:.0f} req/s",
                         f"wrk {pw['rps']:.0f} req/s", pe["rps"] / pw["rps"], "-", "info",
                         "the API's CPU kept off the client's core, as when it is remote")
        if "calls" in figures:
            minimum = fewest_requests(self.tables, *YEAR, self.latest)
            total_min = sum(minimum.values()) * n
            ok = True
            for run in [r for r in self.runs if r["label"].startswith("extract-c")]:
                per_table_ok = all(run["per_table"][t] == (minimum[t] * n, minimum[t] * n) for t in minimum)
                ok = ok and run["requests"] == total_min and run["sim_requests"] == total_min and per_table_ok
            self.row(
                f"fewest calls: {n} acct x 1 y x 7 tables, clean run",
                f"{best_run['requests']} requests (simulator saw {best_run['sim_requests']})",
                f"minimum {total_min}",
                best_run["requests"] / total_min, "= 1.0 exactly", ok,
                "minimum per table: " + ", ".join(f"{t} {minimum[t] * n}" for t in sorted(minimum)),
            )

    def pinned_overhead(self, n: int) -> tuple[dict, dict]:
        with simulator(self, n, cpus="0") as sim:
            requests, _ = self.request_file(sim, n, YEAR)  # this simulator's tokens
            self.wrk("wrk-pinned-warmup", sim, requests, CONCURRENCY, 2, cpus="1")
            w = self.wrk(f"wrk-c{CONCURRENCY}-pinned", sim, requests, CONCURRENCY, WRK_SECS, cpus="1")
            e = self.extract(f"extract-c{CONCURRENCY}-pinned", sim, n, YEAR, CONCURRENCY, cpus="1")
        return w, e

    def latency(self) -> None:
        n = ACCOUNTS
        with simulator(self, n, LATENCY_MS) as sim:
            requests, _ = self.request_file(sim, n, YEAR)
            for c in LATENCY_CONCURRENCY:
                w = self.wrk(f"wrk-latency-c{c}", sim, requests, c, 5)
                e = self.extract(f"extract-latency-c{c}", sim, n, YEAR, c)
                ideal = c / (LATENCY_MS / 1000)
                self.row(
                    f"latency hiding: {n} acct x 1 y x 7 tables, C={c}, +{LATENCY_MS} ms",
                    f"{e['rps']:.0f} req/s",
                    f"C/{LATENCY_MS}ms = {ideal:.0f} req/s",
                    e["rps"] / ideal, ">= 0.9", e["rps"] / ideal >= 0.9,
                    f"{e['requests']} requests in {e['wall']:.1f} s; wrk gets {w['rps']:.0f} req/s "
                    f"({w['rps'] / ideal:.3f})" + self.scale_note(n, 20),
                )

    def memory(self) -> None:
        with simulator(self, MANY_ACCOUNTS) as sim:
            one_small = self.extract("memory-1acct-1y", sim, 1, YEAR, CONCURRENCY)
            one_large = self.extract("memory-1acct-3y", sim, 1, THREE_YEARS, CONCURRENCY)
            many_small = self.extract(f"memory-{MANY_ACCOUNTS}acct-7d", sim, MANY_ACCOUNTS, WEEK, CONCURRENCY)
            many_large = self.extract(f"memory-{MANY_ACCOUNTS}acct-30d", sim, MANY_ACCOUNTS, MONTH, CONCURRENCY)
        for small, large, what, small_what in [
            (one_small, one_large, "1 acct x 3 y", "1 acct x 1 y"),
            (many_small, many_large, f"{MANY_ACCOUNTS} acct x 30 d", f"{MANY_ACCOUNTS} acct x 7 d"),
        ]:
            mb = large["maxrss_kb"] / 1024
            growth = large["maxrss_kb"] / small["maxrss_kb"]
            self.row(
                f"memory: peak RSS, {what}, C={CONCURRENCY}",
                f"{mb:.1f} MB",
                f"{small_what}: {small['maxrss_kb'] / 1024:.1f} MB",
                growth, "< 150 MB; flat (ratio <= 1.25)", mb < 150 and growth <= 1.25,
                f"{large['requests']} vs {small['requests']} requests"
                + ("" if "acct x 3 y" in what else self.scale_note(MANY_ACCOUNTS, 1000)),
            )

    def reader(self, duckdb) -> None:
        n = READER_ACCOUNTS
        out = self.work / "out-reader"
        with simulator(self, n) as sim:
            self.extract(f"reader-{n}acct-1y-hour", sim, n, YEAR, 16, out=out,
                         extra=["--tables", "upstream_msg_hour"])
        written = out / "upstream_msg_hour"
        compact = self.work / "compact" / "upstream_msg_hour"
        shutil.rmtree(compact.parent, ignore_errors=True)
        compact.parent.mkdir(parents=True)
        source = f"read_parquet('{written}/*/*.parquet', hive_partitioning = true)"
        con = duckdb.connect()
        con.execute(
            f"COPY (SELECT * FROM {source} ORDER BY ref_date, appid, ref_hour, msg_type) TO '{compact}' "
            "(FORMAT parquet, PARTITION_BY (ref_date), COMPRESSION zstd)"
        )
        con.close()
        files_w = len(glob.glob(f"{written}/*/*.parquet"))
        files_c = len(glob.glob(f"{compact}/*/*.parquet"))
        parts = len(glob.glob(f"{compact}/*"))
        query = ("SELECT count(*), sum(msg_user), sum(msg_count), min(ref_date), max(ref_date) "
                 "FROM read_parquet('{}/*/*.parquet', hive_partitioning = true)")
        results = {}

        def scan(path):
            c = duckdb.connect()  # a fresh connection each time: no metadata cached between scans
            t = time.perf_counter()
            res = c.execute(query.format(path)).fetchall()
            elapsed = time.perf_counter() - t
            c.close()
            return elapsed, res

        times = {"w": [], "c": []}
        for path, key in [(written, "w"), (compact, "c")]:
            results[key] = scan(path)[1]  # warm the page cache
        for _ in range(7):
            for path, key in [(written, "w"), (compact, "c")]:
                times[key].append(scan(path)[0])
        if results["w"] != results["c"]:
            raise SystemExit(f"reader: compacted copy differs: {results}")
        tw, tc = statistics.median(times["w"]), statistics.median(times["c"])
        self.row(
            f"reader cost: DuckDB scan, {n} acct x 1 y hour table",
            f"{tw * 1000:.0f} ms ({files_w} files)",
            f"1 file/partition: {tc * 1000:.0f} ms ({files_c} files)",
            tw / tc, "<= 1.5", tw / tc <= 1.5,
            f"{results['w'][0][0]} rows, {parts} partitions; median of 7 warm scans, fresh connection each"
            + self.scale_note(n, 200),
        )

    def baseline_extract(self, label: str, sim: Simulator, n: int, rng: tuple) -> dict:
        """One run of benches/baseline.py, the Python script users would write instead, into a new
        folder on the same disk as wxcube's outputs (and, like them, kept until the end). Timed from
        start to exit, as wxcube is: Python's start and imports (about 0.3 s here) are in, which
        only weighs at a small scale."""
        out = self.work / f"out-{label}"
        assert not out.exists(), out
        sim.reset_stats()
        cpu0 = sim.cpu()
        cmd = [str(self.baseline_python), str(ROOT / "benches" / "baseline.py"), "--config", str(self.accounts_file(n)),
               "--api-base", sim.url, "--begin", rng[0].isoformat(), "--end", rng[1].isoformat(),
               "--output", str(out), "--concurrency", str(CONCURRENCY)]
        log(f"{label}: {n} account(s), {rng[0]}..{rng[1]}, {CONCURRENCY} threads")
        r = run_measured(cmd, self.env(n), self.work / f"{label}.stdout", self.work / f"{label}.stderr")
        r["sim_cpu"] = sim.cpu() - cpu0
        lines = (self.work / f"{label}.stdout").read_text().strip().splitlines()
        if r["code"] != 0 or not lines:
            tail = (self.work / f"{label}.stderr").read_text()[-2000:]
            raise SystemExit(f"{label}: benches/baseline.py exited {r['code']} (only a clean run counts):\n{tail}")
        summary = json.loads(lines[-1])
        self.baseline_versions = f"wechatpy {summary['wechatpy']} + pyarrow {summary['pyarrow']}"
        r.update(label=label, accounts=n, begin=rng[0].isoformat(), end=rng[1].isoformat(),
                 requests=summary["requests"], sim_requests=sim.stats()["datacube_requests"], rows=summary["rows"],
                 files_written=summary["files_written"], command=" ".join(cmd))
        r["rps"] = r["requests"] / r["wall"]
        self.runs.append(r)
        log(f"{label}: {r['requests']} requests in {r['wall']:.2f} s = {r['rps']:.0f} req/s, "
            f"{r['files_written']} files, CPU {r['user']:.1f}+{r['sys']:.1f} s, simulator CPU {r['sim_cpu']:.1f} s")
        return r

    def baseline_and_durability(self, figures: list[str]) -> None:
        """Both figures for both workloads: one account over many years (many small files, few
        accounts to spread the work over) and many accounts over a year. wxcube's runs on disk
        serve both figures; the programs take turns, best of 2 each for the baseline. The
        durability pair (disk, tmpfs) gets a third turn: this machine's virtual disk varies
        from run to run (the minimal writer's same files took 0.44 to 1.51 s on it), and the
        fastest of three is less often a run the host slowed down."""
        shm = Path("/dev/shm")
        tmpfs_ok = shm.is_dir() and os.access(shm, os.W_OK)
        results = []
        for n, months, wanted in [(1, LONG_MONTHS, (1, 72)), (ACCOUNTS, WIDE_MONTHS, (20, 12))]:
            rng, tag = last_months(months), f"{n}acct-{months}mo"
            disk, python, tmpfs = [], [], []
            with simulator(self, n) as sim:
                for k in (1, 2, 3) if "durability" in figures and tmpfs_ok else (1, 2):
                    disk.append(self.extract(f"wxcube-{tag}-{k}", sim, n, rng, CONCURRENCY))
                    if "baseline" in figures and k <= 2:
                        python.append(self.baseline_extract(f"python-{tag}-{k}", sim, n, rng))
                    if "durability" in figures and tmpfs_ok:
                        out = shm / f"wxcube-bench-{os.getpid()}-{tag}-{k}"
                        self.cleanup.append(out)
                        tmpfs.append(self.extract(f"wxcube-{tag}-tmpfs-{k}", sim, n, rng, CONCURRENCY, out=out))
            results.append((f"{n} acct x {range_text(months)} x 7 tables", self.scale_note(n, wanted[0], months, wanted[1]),
                            disk, fastest(python), fastest(tmpfs)))
        # The rows figure by figure, not workload by workload.
        if "baseline" in figures:
            for what, scale, disk, python, _ in results:
                # The same number of turns as the Python script's.
                self.baseline_row(what, fastest(disk[:2]), python, scale)
        if "durability" in figures:
            for what, scale, disk, _, tmpfs in results:
                if tmpfs:
                    self.durability_row(what, fastest(disk), tmpfs, scale)
                    self.file_system_floor(what, fastest(disk), tmpfs)
                else:
                    self.row(f"durability: {what}", f"{fastest(disk)['wall']:.2f} s", "tmpfs: -", "-", "<= 1.25", "skipped",
                             "/dev/shm is not a writable folder here")

    def baseline_row(self, what: str, wxcube: dict, python: dict, scale: str) -> None:
        ratio = python["wall"] / wxcube["wall"]
        note = (f"{wxcube['rows']} rows; wxcube {wxcube['requests']} requests, {wxcube['files_written']} files "
                f"(fsync'd); Python {python['requests']} requests, {python['files_written']} files (one per account "
                f"and day, no fsync); best of 2 each, alternating")
        if python["rows"] != wxcube["rows"]:
            note += f"; ROW COUNTS DIFFER: wxcube {wxcube['rows']}, Python {python['rows']}"
        self.row(f"baseline: Python time / wxcube time, {what}, C={CONCURRENCY}", f"wxcube {wxcube['wall']:.2f} s",
                 f"Python {python['wall']:.2f} s", ratio, ">= 5.0",
                 ratio >= 5.0 and python["rows"] == wxcube["rows"], note + scale)

    def durability_row(self, what: str, disk: dict, tmpfs: dict, scale: str) -> None:
        ratio = disk["wall"] / tmpfs["wall"]
        note = (f"{disk['files_written']} files; system CPU {disk['sys']:.1f} s on disk, {tmpfs['sys']:.1f} s on "
                f"tmpfs; best of 3 each, alternating")
        if disk["rows"] != tmpfs["rows"]:
            note += f"; ROW COUNTS DIFFER: disk {disk['rows']}, tmpfs {tmpfs['rows']}"
        self.row(f"durability: extract on disk / on tmpfs, {what}, C={CONCURRENCY}", f"{disk['wall']:.2f} s",
                 f"tmpfs {tmpfs['wall']:.2f} s", ratio, "<= 1.25", ratio <= 1.25, note + scale)

    def file_system_floor(self, what: str, disk: dict, tmpfs: dict) -> None:
        """What the file system itself charges for these files: the data files of wxcube's tmpfs
        output, written again by the least a program can do (a folder and a file each, then one
        syncfs for all, no staging, no rename) into a new folder on the disk and on tmpfs. The
        difference between the two is the disk's own cost of creating them durably, a floor for
        wxcube's difference (its own CPU is the same on both)."""
        source = Path(tmpfs["out"])
        files = sorted(p for p in source.rglob("*.parquet") if "_wxcube" not in p.parts)
        contents = [(p.relative_to(source), p.read_bytes()) for p in files]
        walls = {}
        for where, root in [("disk", self.work / f"floor-{tmpfs['label']}"),
                            ("tmpfs", Path("/dev/shm") / f"wxcube-bench-{os.getpid()}-floor-{tmpfs['label']}")]:
            self.cleanup.append(root)
            subprocess.run(["sync"], check=True)
            start = time.perf_counter()
            for rel, data in contents:
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            subprocess.run(["sync", "-f", str(root)], check=True)
            walls[where] = time.perf_counter() - start
        floor = walls["disk"] - walls["tmpfs"]
        mine = disk["wall"] - tmpfs["wall"]
        self.row(f"  diagnostic: the disk's own cost of these files, {what}",
                 f"wxcube: disk - tmpfs = {mine:.2f} s",
                 f"floor: {floor:.2f} s ({walls['disk']:.2f} - {walls['tmpfs']:.2f})",
                 mine / floor if floor > 0 else "-", "-", "info",
                 f"{len(contents)} files written again by a minimal writer (a folder and a file each, one syncfs "
                 f"for all): what the disk charges beyond tmpfs for creating them durably, whoever writes them")

    def rebuild(self, duckdb, n: int, months: int, wanted: tuple[int, int]) -> None:
        """`wxcube rebuild` of n accounts' last `months` from their --keep-raw answers, against
        DuckDB writing the same rows; `wanted` is the (accounts, months) the target is set at."""
        help_text = subprocess.run([str(self.bin), "--help"], capture_output=True, text=True).stdout
        if not re.search(r"^\s+rebuild\s", help_text, re.M):
            self.row("normalize + write: wxcube rebuild", "-", "DuckDB COPY ... PARTITION_BY", "-", "<= 1.0",
                     "pending rebuild", "wxcube has no rebuild command yet")
            return
        rng, tag = last_months(months), f"{n}acct-{months}mo"
        landed = self.work / f"out-rebuild-{tag}-keep-raw"
        with simulator(self, n) as sim:
            extract = self.extract(f"rebuild-{tag}-keep-raw", sim, n, rng, CONCURRENCY, out=landed,
                                   extra=["--keep-raw"])
        raw_files = len(glob.glob(f"{landed}/_wxcube/raw/*/*/*.json.zst"))
        times = {"wxcube": [], "duckdb": []}
        for k in (1, 2):
            # An output holding only the raw answers and the dataset settings (hard links: no data
            # is copied, nothing is deleted), so the rebuild writes every table file anew.
            out = self.work / f"out-rebuild-{tag}-{k}"
            (out / "_wxcube").mkdir(parents=True)
            shutil.copy(landed / "_wxcube" / "dataset.json", out / "_wxcube" / "dataset.json")
            subprocess.run(["cp", "-al", str(landed / "_wxcube" / "raw"), str(out / "_wxcube" / "raw")], check=True)
            label = f"rebuild-{tag}-{k}"
            r = run_measured([str(self.bin), "rebuild", "--output", str(out)], self.env(0),
                             self.work / f"{label}.stdout", self.work / f"{label}.stderr")
            if r["code"] != 0:
                raise SystemExit(f"wxcube rebuild exited {r['code']}: "
                                 f"{(self.work / f'{label}.stderr').read_text()[-2000:]}")
            summary = json.loads((self.work / f"{label}.stdout").read_text().strip().splitlines()[-1])
            r.update(label=label, rows=summary["rows"], files_written=summary["files_written"])
            if summary.get("peak_rss_kb"):
                r["maxrss_kb"] = summary["peak_rss_kb"]
            self.runs.append(r)
            times["wxcube"].append(r["wall"])
            log(f"{label}: {summary['rows']} rows, {summary['files_written']} files in {r['wall']:.2f} s, "
                f"peak RSS {r['maxrss_kb'] / 1024:.1f} MB")

            ddb_out = self.work / f"duckdb-{label}"
            ddb_out.mkdir()
            subprocess.run(["sync"], check=True)
            con = duckdb.connect()
            start = time.perf_counter()
            for name, t in self.tables.items():
                con.execute(f"COPY ({duckdb_select(t, out / '_wxcube' / 'raw')}) TO '{ddb_out / name}' "
                            "(FORMAT parquet, PARTITION_BY (ref_date), COMPRESSION zstd)")
            # Durable, as wxcube's files are when it exits (it fsyncs each one).
            subprocess.run(["sync", "-f", str(ddb_out)], check=True)
            t_ddb = time.perf_counter() - start
            ddb_rows = sum(con.execute(f"SELECT count(*) FROM read_parquet('{ddb_out / name}/*/*.parquet')").fetchone()[0]
                           for name in self.tables)
            con.close()
            times["duckdb"].append(t_ddb)
            ddb_files = len(glob.glob(f"{ddb_out}/*/*/*.parquet"))
            self.runs.append(dict(label=f"duckdb-{label}", wall=t_ddb, files_written=ddb_files, rows=ddb_rows))
            log(f"duckdb-{label}: {ddb_rows} rows, {ddb_files} files in {t_ddb:.2f} s")
        tw, td = min(times["wxcube"]), min(times["duckdb"])
        note = (f"{raw_files} raw answers -> {summary['rows']} rows; wxcube writes {summary['files_written']} files "
                f"(one per bucket), DuckDB {ddb_files} (one per partition); best of 2 each")
        if not (ddb_rows == summary["rows"] == extract["rows"]):
            note += f"; ROW COUNTS DIFFER: extract {extract['rows']}, rebuild {summary['rows']}, DuckDB {ddb_rows}"
        self.row(
            f"normalize + write: rebuild, {n} acct x {range_text(months)} x 7 tables",
            f"{tw:.2f} s",
            f"DuckDB COPY: {td:.2f} s",
            tw / td, "<= 1.0", tw / td <= 1.0, note + self.scale_note(n, wanted[0], months, wanted[1]),
        )


def duckdb_select(t: dict, raw: Path) -> str:
    """DuckDB's version of normalize for one table: the stored answers' rows, typed and labelled
    as wxcube's columns, the appid from the object key, sorted as wxcube sorts them."""
    fields = {}
    for c in t["columns"]:
        if c.get("from", "").startswith("@") or "label_of" in c:
            continue
        fields[c["from"]] = "VARCHAR" if c["type"] == "string" else "BIGINT"
    struct = ", ".join(["ref_date VARCHAR"] + [f"{f} {ty}" for f, ty in fields.items() if f != "ref_date"])
    cols = []
    for c in t["columns"]:
        name, ty = c["name"], c["type"]
        if c.get("from") == "@appid":
            cols.append(f"appid AS {name}")
        elif c.get("from") == "@extracted_at":
            cols.append(f"now()::TIMESTAMPTZ AS {name}")
        elif "label_of" in c:
            labels = t["labels"][c["label_of"]]
            cases = " ".join(f"WHEN {k} THEN '{v}'" for k, v in labels.items())
            cols.append(f"CASE r.{c['label_of']} {cases} END AS {name}")
        else:
            sql_ty = {"int32": "INTEGER", "int64": "BIGINT", "string": "VARCHAR"}[ty]
            expr = f"r.{c['from']}"
            if "divide_by" in c:
                expr = f"({expr} // {c['divide_by']})"
            cols.append(f"{expr}::{sql_ty} AS {name}")
    key = ", ".join(["appid"] + t.get("row_key", []))
    return (
        f"SELECT {', '.join(cols)}, r.ref_date::DATE AS ref_date FROM ("
        f"SELECT regexp_extract(filename, '/([^/]+)/[^/]+$', 1) AS appid, unnest(list) AS r "
        f"FROM read_json('{raw}/{t['name']}/*/*.json.zst', filename = true, format = 'auto', "
        f"compression = 'zstd', columns = {{'list': 'STRUCT({struct})[]'}})) "
        f"ORDER BY ref_date, {key}"
    )


# ---------------------------------------------------------------------------------------------
# Report


def machine() -> list[str]:
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = "?"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    fs = subprocess.run(["df", "--output=fstype,source"], capture_output=True, text=True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "schemas", "Cargo.toml",
                            "Cargo.lock"], capture_output=True, text=True).stdout.strip()
    wrk = subprocess.run(["sh", "-c", "wrk --version || echo 'wrk not installed'"], capture_output=True, text=True)
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return [fs.stdout, commit.stdout.strip() + (" + uncommitted changes in src/" if dirty else ""),
            f"{nproc} CPUs (nproc), {cpu}, {mem} RAM, Linux {platform.release()}",
            (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else "wrk ?", rustc]


def print_report(bench: Bench, started: float, workdisk: str, figures: list[str]) -> None:
    _, commit, host, wrk_version, rustc = machine()
    import duckdb
    out = []
    out.append("wxcube benchmarks")
    out.append(f"  machine   {host}")
    out.append(f"  build     wxcube {commit}, release profile, {rustc}")
    busy, steal = cpu_busy()
    mine = own_cpu() - bench.own_cpu_at_start
    others = max(0.0, busy - bench.busy_at_start - mine)
    wall = time.time() - started
    out.append(f"  noise     CPU used outside the bench (other processes, kernel threads): {others:.0f} s of "
               f"{wall * os.cpu_count():.0f} s ({others / (wall * os.cpu_count()):.0%}); stolen by the "
               f"hypervisor: {steal - bench.steal_at_start:.0f} s. Figures are only comparable when both are near 0.")
    out.append(f"  setup     built-in simulator on loopback (--today {TODAY}); output on {workdisk};")
    python = f", Python with {bench.baseline_versions}" if bench.baseline_versions else ""
    out.append(f"            baselines: {wrk_version.split(' Copyright')[0]} (1 thread), DuckDB {duckdb.__version__}{python}")
    out.append("")
    headers = ["figure", "measured", "baseline", "ratio", "target", "result"]
    table = [[r[h] for h in headers] for r in bench.rows]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(headers)]
    out.append("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    out.append("  ".join("-" * w for w in widths))
    for row, r in zip(table, bench.rows):
        out.append("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
        if r["note"]:
            out.append(f"    {r['note']}")
    out.append("")
    out.append("runs (wall, requests/s, files, peak RSS, CPU of wxcube or wrk, CPU of the simulator):")
    for r in bench.runs:
        if r["label"].startswith("wrk"):
            out.append(f"  {r['label']:<28} {r['wall']:6.1f} s  {r['rps']:7.0f} req/s"
                       f"{'':>14}  cpu {r['user'] + r['sys']:5.1f} s  sim cpu {r['sim_cpu']:5.1f} s")
        elif "requests" in r:
            out.append(f"  {r['label']:<28} {r['wall']:6.1f} s  {r['rps']:7.0f} req/s  {r['files_written']:6d} files"
                       f"  cpu {r['user']:5.1f}+{r['sys']:4.1f} s  sim cpu {r['sim_cpu']:5.1f} s"
                       f"  rss {r['maxrss_kb'] / 1024:5.1f} MB")
        elif "user" in r:
            out.append(f"  {r['label']:<28} {r['wall']:6.1f} s  {'':>13}  {r.get('files_written', 0):6d} files"
                       f"  cpu {r['user']:5.1f}+{r['sys']:4.1f} s  {'':>16}  rss {r['maxrss_kb'] / 1024:5.1f} MB")
        else:
            out.append(f"  {r['label']:<28} {r['wall']:6.1f} s  {'':>13}  {r.get('files_written', 0):6d} files")
    out.append("")
    out.append(f"total bench time {time.time() - started:.0f} s; work folder {bench.work}")
    only = "" if set(figures) == set(ALL_FIGURES) else " --only " + ",".join(figures)
    out.append(f"reproduce: benches/run.sh{only}")
    print("\n".join(out), flush=True)
    (bench.work / "results.json").write_text(json.dumps({"rows": bench.rows, "runs": bench.runs}, indent=1))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", required=True, type=Path, help="the wxcube release binary")
    p.add_argument("--work", required=True, type=Path, help="scratch folder (emptied first), on the disk to test")
    p.add_argument("--only", default=",".join(ALL_FIGURES), help=f"comma-separated subset of {','.join(ALL_FIGURES)}")
    p.add_argument("--keep", action="store_true", help="keep the work folder (outputs, logs, results.json)")
    p.add_argument("--baseline-python", type=Path,
                   help="the Python with benches/requirements.txt installed (the baseline figure's)")
    args = p.parse_args()
    figures = [f.strip() for f in args.only.split(",") if f.strip()]
    unknown = set(figures) - set(ALL_FIGURES)
    if unknown:
        p.error(f"unknown figure(s) {sorted(unknown)}: choose from {ALL_FIGURES}")
    if "baseline" in figures and not args.baseline_python:
        p.error("the baseline figure needs --baseline-python (benches/run.sh passes it)")
    # One bench at a time per work folder: two would share the folder and each other's CPU.
    args.work.parent.mkdir(parents=True, exist_ok=True)
    lock = open(args.work.with_name(args.work.name + ".lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"another benchmark holds {lock.name}; waiting for it to finish")
        fcntl.flock(lock, fcntl.LOCK_EX)
    wait_out_recent_deletions(args.work)
    started = time.time()
    # An earlier bench's folder is moved aside and removed at the end, not now (see extract()).
    old = None
    if args.work.exists():
        old = args.work.with_name(f"{args.work.name}.old-{os.getpid()}")
        args.work.rename(old)
    args.work.mkdir(parents=True)
    workdisk = subprocess.run(["df", "--output=fstype,source", str(args.work)], capture_output=True,
                              text=True).stdout.splitlines()[-1].split()
    workdisk = f"{workdisk[0]} ({workdisk[1]})" if len(workdisk) == 2 else "?"
    import duckdb

    bench = Bench(args.bin.resolve(), args.work.resolve(), args.baseline_python)
    bench.cleanup += [old] if old else []
    try:
        if "overhead" in figures or "calls" in figures:
            bench.overhead_and_calls(figures)
        if "latency" in figures:
            bench.latency()
        if "rebuild" in figures:
            bench.rebuild(duckdb, ACCOUNTS, 12, (20, 12))
        if "rebuild6y" in figures:
            bench.rebuild(duckdb, 1, LONG_MONTHS, (1, 72))
        if "memory" in figures:
            bench.memory()
        if "reader" in figures:
            bench.reader(duckdb)
        if "baseline" in figures or "durability" in figures:
            bench.baseline_and_durability(figures)
    finally:
        print_report(bench, started, workdisk, figures)
        if not args.keep:
            for child in bench.work.iterdir():
                if child.name != "results.json" and not child.name.endswith((".log", ".stderr", ".stdout", ".time")):
                    bench.cleanup.append(child)
        for path in bench.cleanup:
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        deletions_stamp(args.work).write_text(str(time.time()))
    return 1 if any(r["result"] == "FAIL" for r in bench.rows) else 0


# ext4 does not reuse an inode deleted in the last few minutes: for a while after thousands of
# files are removed, creating files scans past them, and a run that writes thousands of files
# takes up to twice as long (seen with perf: recently_deleted() under __ext4_new_inode). A bench
# that follows another one's clean-up within that window measures ext4's bookkeeping, not
# wxcube, so it waits.
RECENTLY_DELETED_SECS = 300


def deletions_stamp(work: Path) -> Path:
    return work.with_name(work.name + ".cleaned-at")


def wait_out_recent_deletions(work: Path) -> None:
    try:
        cleaned = float(deletions_stamp(work).read_text())
    except (OSError, ValueError):
        return
    left = RECENTLY_DELETED_SECS - (time.time() - cleaned)
    if left > 0:
        log(f"the last bench removed its files {RECENTLY_DELETED_SECS - left:.0f} s ago; waiting {left:.0f} s "
            "for ext4 to stop skipping their inodes, so that this run measures wxcube")
        time.sleep(left)


if __name__ == "__main__":
    sys.exit(main())
