#!/usr/bin/env bash
# wxcube's benchmarks: builds the release binary, then prints a table of figures, each next to
# the baseline it is compared to, measured in this run on this machine (see README,
# "Performance"). About 5 minutes on 2 cores (measured: 247 s for every figure, of which the
# Python baseline's runs take about 70 s), after a wait of up to 5 minutes when the previous
# bench cleaned up less than that ago (see wait_out_recent_deletions in bench.py).
#
#   benches/run.sh                          every figure
#   benches/run.sh --only overhead,calls    a subset: overhead, latency, calls, rebuild, rebuild6y,
#                                           memory, reader, baseline, durability
#   benches/run.sh --keep                   keep the outputs and logs in the work folder
#
# Needs what scripts/test.sh needs (Python 3 with venv; DuckDB comes from tests/requirements.txt
# into the same cached virtualenv) plus wrk, the load generator of the client-overhead baseline,
# and GNU time (both installed with apt-get when missing and run as root). The Python baseline
# (benches/baseline.py: wechatpy, pyarrow) gets a virtualenv of its own from
# benches/requirements.txt, cached beside the readers'. The work folder is
# ${WXCUBE_BENCH_WORK:-<cargo target dir>/bench}: put it on the disk you want to measure.
# Exit code 1 when a figure misses its target.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same virtualenv, built the same way, as scripts/test.sh.
. scripts/venv.sh
ensure_readers
# The Python baseline's own virtualenv: its pinned pyarrow and HTTP stack must not meet the
# readers'.
bench_venv="$cache/bench-venv"
ensure_venv "$bench_venv" benches/requirements.txt 'import wechatpy, pyarrow, cryptography'

# wrk (the load generator) and GNU time (peak RSS of each run), from the distribution.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> apt-get install ${missing[*]}" >&2
    apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
  else
    echo "error: ${missing[*]} not installed: install (Debian/Ubuntu: sudo apt-get install ${missing[*]}) and run again" >&2
    exit 2
  fi
fi

echo "==> cargo build --release" >&2
cargo build --release --quiet
target_dir="$(cargo metadata --format-version 1 --no-deps | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"

exec "$venv/bin/python" benches/bench.py --bin "$target_dir/release/wxcube" --work "${WXCUBE_BENCH_WORK:-$target_dir/bench}" \
  --baseline-python "$bench_venv/bin/python" "$@"
