#!/bin/sh
# After make valgrind-integration: every hearthd ran under memcheck with -q,
# so a report that is not empty holds an error or a definite leak.
dir=$1
runs=$(ls "$dir" 2>/dev/null | wc -l)
bad=$(find "$dir" -type f -size +0 | wc -l)
echo "hearthd under memcheck: $runs runs, $bad with errors or leaks"
[ "$runs" -gt 0 ] || { echo "no hearthd ran under memcheck"; exit 1; }
if [ "$bad" -gt 0 ]; then
	for f in $(find "$dir" -type f -size +0); do
		echo "== $f"
		head -60 "$f"
	done
	exit 1
fi
