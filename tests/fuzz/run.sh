#!/bin/sh
# Runs one libFuzzer target for a bounded time, quietly: the full output
# goes to build/fuzz/logs/TARGET.log; printed are the final figures, or on
# a crash, leak or timeout the end of the report and the saved input.
#   tests/fuzz/run.sh TARGET SECONDS [DICT]
# Reads its seeds from tests/fuzz/corpus/TARGET, adds what it finds to
# build/fuzz/corpus/TARGET, saves failing inputs in build/fuzz/artifacts.
# FUZZ_TIMEOUT: seconds one input may take (default 10).
set -u
t=$1 seconds=$2 dict=${3:-}
bin=build/fuzz/$t log=build/fuzz/logs/$t.log
mkdir -p "build/fuzz/corpus/$t" build/fuzz/artifacts build/fuzz/logs

set -- -max_total_time="$seconds" -timeout="${FUZZ_TIMEOUT:-10}" -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="build/fuzz/artifacts/$t-"
[ -n "$dict" ] && set -- "$@" -dict="$dict"
echo "fuzz: $t for ${seconds}s (log: $log)"
nice -n 10 "$bin" "$@" "build/fuzz/corpus/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
	tail -n 60 "$log"
	echo
	echo "fuzz: $t FAILED (exit $rc); reproduce with: $bin build/fuzz/artifacts/$t-*" >&2
	exit 1
fi
# libFuzzer's last line: "#581226	DONE   cov: 1040 ft: 3237 corp: 651/59Kb lim: 1202
# exec/s: 18749 rss: 188Mb" (cov: edges covered, ft: features, corp: entries/size).
status=$(grep -aE '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 |
	sed -E 's/^#([0-9]+)[[:space:]]+DONE[[:space:]]+/\1 runs, /')
echo "fuzz: $t ok: $status"
