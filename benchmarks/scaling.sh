#!/bin/sh
# The scaling curve of the shared-nothing builds (locks where an NF needs it): Mpps at 1, 2, 4, 8 and
# 16 cores next to seq, for every sample NF on the traffic of its main path, with per-core busy time
# and packets in each <nf>.json so that a loss can be attributed. Writes OUT/curve.csv, one .json and
# .svg per NF, and OUT/scaling.txt (the reports, the summary and the targets, as printed).
#
#   benchmarks/scaling.sh [OUT] [CORES]        defaults: scaling-results 1,2,4,8,16
#
# More cores than CPUs still runs (lcores then share CPUs) but measures nothing useful: run it on a
# machine with at least max(CORES) free CPUs. PYTHON (default .venv/bin/python) must have nf-explorer;
# REPEAT (3), PACKETS (4000000) and TRACE_PACKETS (200000) set the runs per build, the timed packets of
# each and the trace they cycle over; NFS (every sample) which NFs to measure.
#
# On a machine without DPDK's development files or this project (the lent 16-core device), carry the
# same builds and traces instead, measure them there with Python's standard library, and read the
# results here (benchmarks/README.md, "16 cores"):
#   here:  .venv/bin/python benchmarks/bench_parallel.py --bundle .bundle --cores 1,2,4,8,16 --strategies sn,locks
#   there: python3 .bundle/run_bundle.py OUT/results.json --deadline 400
#   here:  .venv/bin/python benchmarks/bench_parallel.py --report results.json --out scaling-results
set -eu
cd "$(dirname "$0")/.."
out=${1:-scaling-results}
mkdir -p "$out"
status=0
"${PYTHON:-.venv/bin/python}" benchmarks/bench_parallel.py --cores "${2:-1,2,4,8,16}" --strategies sn,locks \
    --nfs "${NFS:-nop,sbridge,bridge,pol,fw,nat,cl,psd,lb}" --repeat "${REPEAT:-3}" --packets "${PACKETS:-4000000}" \
    --trace-packets "${TRACE_PACKETS:-200000}" --out "$out" > "$out/scaling.txt" || status=$?
cat "$out/scaling.txt"
exit "$status"
