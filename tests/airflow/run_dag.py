"""Runs a DAG once with `airflow dags test` and prints, as one JSON object, what Airflow recorded.

    ~/.cache/wxcube/airflow-venv/bin/python run_dag.py DAG_FILE DAG_ID LOGICAL_DATE

Run it with the Python of the Airflow virtualenv (scripts/test.sh installs it), with
AIRFLOW_HOME set to an empty folder of its own and the environment the DAG reads. It migrates a
SQLite metadata database there, runs the DAG (its tasks run one at a time, in-process, as
`dags test` does), then reads back from that database through Airflow's own models:

    {"exit_code": 0, "log": "...", "seconds": {...},
     "run": {"state", "logical_date", "data_interval_start", "data_interval_end"},
     "tasks": [{"task_id", "map_index", "rendered_map_index", "state", "try_number", "xcom"}],
     "retry_policy": {"1": "default", "2": "fail"},   # the DAG's policy on BashOperator's exceptions
     "dag_warnings": [...]}                           # warnings raised by the DAG file itself

`dags test` waits out a task's retry delay before retrying it, so this stops the run as soon as
a task is up for retry (and after --timeout seconds in any case) rather than hang: a test wants
the failure, with the log's tail on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path


def airflow(*args: str) -> list[str]:
    # The `airflow` script beside this interpreter (not resolved: the venv's python is a symlink).
    return [str(Path(sys.executable).with_name("airflow")), *args]


def run_dag(dag_id: str, logical_date: str, log: Path, timeout: float) -> tuple[int, str | None]:
    """`airflow dags test`, its output to `log`; returns (exit code, why it was stopped)."""
    stopped: list[str] = []
    with open(log, "w") as out:
        proc = subprocess.Popen(
            airflow("dags", "test", dag_id, logical_date),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**os.environ, "PYTHONUNBUFFERED": "1"},  # each line as it comes, to watch for retries
        )

        def stop(why: str) -> None:
            if proc.poll() is None:
                stopped.append(why)
                proc.terminate()
                killer = threading.Timer(10, proc.kill)  # it may sit out SIGTERM
                killer.daemon = True
                killer.start()

        timer = threading.Timer(timeout, stop, [f"still running after {timeout:.0f} s"])
        timer.start()
        for line in proc.stdout:
            out.write(line)
            if "state=up_for_retry" in line:
                stop("a task failed and is waiting for its retry")
        code = proc.wait()
        timer.cancel()
    return code, (stopped[0] if stopped else None)


def retry_decisions(dag_file: Path) -> tuple[dict[str, str], list[str]]:
    """What the DAG's retry policy decides for BashOperator's own exception at exit 1 and 2,
    and the warnings the DAG file raises when imported."""
    from airflow.providers.standard.operators.bash import BashOperator

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = runpy.run_path(str(dag_file))
    dag_warnings = [f"{w.category.__name__}: {w.message}" for w in caught if Path(w.filename) == dag_file]
    policy = names["extract"].partial_kwargs["retry_policy"]
    decisions = {}
    for code in (1, 2):
        try:
            BashOperator(task_id=f"exit_{code}", bash_command=f"exit {code}").execute({})
            decisions[str(code)] = "no exception"
        except Exception as e:  # noqa: BLE001 -- whatever BashOperator raises is what the policy sees
            decisions[str(code)] = policy.evaluate(e, try_number=1, max_tries=3).action.value
    return decisions, dag_warnings


def recorded(dag_id: str) -> dict:
    """The DAG's run, task instances and XCom return values, read through Airflow's models."""
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    def iso(t):
        return t.isoformat() if t else None

    with create_session() as session:
        runs = session.scalars(select(DagRun).where(DagRun.dag_id == dag_id)).all()
        if len(runs) != 1:
            return {"run": None, "tasks": [], "runs": len(runs)}
        run = runs[0]
        xcoms = {
            (x.task_id, x.map_index): XComModel.deserialize_value(x)
            for x in session.scalars(
                select(XComModel).where(
                    XComModel.dag_id == dag_id, XComModel.run_id == run.run_id, XComModel.key == "return_value"
                )
            )
        }
        tis = session.scalars(
            select(TaskInstance)
            .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id)
            .order_by(TaskInstance.task_id, TaskInstance.map_index)
        ).all()
        return {
            "run": {
                "state": str(run.state),
                "logical_date": iso(run.logical_date),
                "data_interval_start": iso(run.data_interval_start),
                "data_interval_end": iso(run.data_interval_end),
            },
            "tasks": [
                {
                    "task_id": ti.task_id,
                    "map_index": ti.map_index,
                    "rendered_map_index": ti.rendered_map_index,
                    "state": str(ti.state),
                    "try_number": ti.try_number,
                    "xcom": xcoms.get((ti.task_id, ti.map_index)),
                }
                for ti in tis
            ],
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dag_file", type=Path)
    parser.add_argument("dag_id")
    parser.add_argument("logical_date")
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    home = os.environ.get("AIRFLOW_HOME")
    if not home or (Path(home).exists() and any(Path(home).iterdir())):
        sys.exit("set AIRFLOW_HOME to an empty folder: this creates a metadata database there")
    Path(home).mkdir(parents=True, exist_ok=True)
    # Airflow logs to stdout: keep stdout for the JSON, stderr for what went wrong.
    result_out = os.fdopen(os.dup(1), "w")
    with open(Path(home) / "run_dag.log", "w") as own_log:
        os.dup2(own_log.fileno(), 1)
    dag_file = args.dag_file.resolve()
    os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(dag_file.parent)
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"

    seconds = {}
    t = time.monotonic()
    migrate = subprocess.run(airflow("db", "migrate"), capture_output=True, text=True)
    seconds["db_migrate"] = round(time.monotonic() - t, 1)
    if migrate.returncode != 0:
        sys.exit(f"airflow db migrate failed:\n{migrate.stdout[-3000:]}\n{migrate.stderr[-3000:]}")

    log = Path(home) / "dags-test.log"
    t = time.monotonic()
    code, stopped = run_dag(args.dag_id, args.logical_date, log, args.timeout)
    seconds["dags_test"] = round(time.monotonic() - t, 1)
    if code != 0 or stopped:
        lines = log.read_text(errors="replace").splitlines()
        # wxcube's own "error: ..." lines and exit codes, then the end of the log.
        notable = [l for l in lines if "] error: " in l or "Command exited with return code" in l][:20]
        print(f"airflow dags test: exit {code}{'; stopped: ' + stopped if stopped else ''} ({log})", file=sys.stderr)
        print("\n".join([*notable, "...", *lines[-40:]]), file=sys.stderr)

    t = time.monotonic()
    decisions, dag_warnings = retry_decisions(dag_file)
    result = {"exit_code": code, "stopped": stopped, "log": str(log), **recorded(args.dag_id)}
    result.update(retry_policy=decisions, dag_warnings=dag_warnings)
    seconds["read_back"] = round(time.monotonic() - t, 1)
    result["seconds"] = seconds
    sys.stdout.flush()
    result_out.write(json.dumps(result) + "\n")
    result_out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
