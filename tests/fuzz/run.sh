#!/bin/sh
# tests/fuzz/run.sh SECONDS JOBS build-fuzz/fuzz_NAME...
# Runs each libFuzzer target for SECONDS, JOBS of them at a time, on its
# seeds (tests/fuzz/corpus/NAME, untouched) and what earlier runs found
# (build-fuzz/corpus/NAME). Prints each target's execs and rate; on a crash
# prints the end of its log and fails (the input is kept as
# build-fuzz/crash-NAME-*).
if [ "$1" = --one ]; then
	secs=$2 f=$3 n=${3#build-fuzz/fuzz_}
	mkdir -p "build-fuzz/corpus/$n"
	if ! "$f" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=1024 \
		-artifact_prefix="build-fuzz/crash-$n-" "build-fuzz/corpus/$n" "tests/fuzz/corpus/$n" \
		>"build-fuzz/$n.log" 2>&1; then
		echo "== $n: FAILED"
		tail -40 "build-fuzz/$n.log"
		exit 1
	fi
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "build-fuzz/$n.log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "build-fuzz/$n.log")
	echo "== $n ($secs s): $execs execs, $rate/s, no crash"
	exit 0
fi
secs=$1 jobs=$2
shift 2
printf '%s\n' "$@" | xargs -P "$jobs" -n 1 sh "$0" --one "$secs"
