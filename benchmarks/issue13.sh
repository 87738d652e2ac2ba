#!/bin/sh
# Issue 13's figures in one run, each next to its baseline measured in the same process: the
# simulator's Mpps next to a plain numpy Toeplitz of the same packets, and its peak RSS at 10M and
# 100M packets (bench_simulate.py); locks, tm and sn at 1 and 2 cores next to seq for fw, nat and lb,
# each on the traffic of its main path, with verdict and write-lock shares and PASS/FAIL per target
# (bench_parallel.py); the analysis time of every sample and of the ACL test NFs (bench_analysis.py).
# Run it on a quiet machine: the load average is printed first and with the analysis figures.
#
#   benchmarks/issue13.sh [OUT]        default OUT: issue13-results (the report: OUT/issue13.txt)
#
# QUICK=1 runs each stage small (1M packets, no 100M RSS, 1 round), to try the script, not to measure.
set -eu
cd "$(dirname "$0")/.."
out=${1:-issue13-results}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
if [ "${QUICK:-0}" = 1 ]; then
    sim="--packets 1000000 --runs 1 --rss 1000000"; par="--packets 200000 --repeat 1"; runs=1
else
    sim="--packets 10000000 --runs 3 --rss 10000000,100000000"; par="--packets 2000000 --repeat 3"; runs=5
fi
rm -f "$out/failed"
{
    echo "== issue 13 figures, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "== simulator next to a plain numpy Toeplitz; peak RSS (bench_simulate.py $sim)"
    # shellcheck disable=SC2086
    "$py" benchmarks/bench_simulate.py $sim --nf fw --nf nat || echo simulator >> "$out/failed"
    echo "== generated builds at 1 and 2 cores next to seq (bench_parallel.py $par)"
    # shellcheck disable=SC2086
    "$py" benchmarks/bench_parallel.py --cores 1,2 --nfs fw,nat,lb --strategies sn,locks,tm $par --out "$out" || echo builds >> "$out/failed"
    echo "== analysis (bench_analysis.py --runs $runs)"
    "$py" benchmarks/bench_analysis.py --runs "$runs" || echo analysis >> "$out/failed"
} 2>&1 | tee "$out/issue13.txt"
if [ -e "$out/failed" ]; then
    echo "a stage failed: $(tr '\n' ' ' < "$out/failed")(see $out/issue13.txt)" >&2
    exit 1
fi
