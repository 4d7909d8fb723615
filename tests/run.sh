#!/bin/sh
# Runs every test binary given, each with a time limit (optionally under
# $VALGRIND), and prints one
# summary line: "N passed, N failed". Exit status non-zero on any failure.
passed=0
failed=0
failed_names=""
for t in "$@"; do
	name=$(basename "$t")
	echo "== $name"
	# $VALGRIND (make valgrind) runs each binary under memcheck
	if timeout 900 $VALGRIND "$t"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failed_names="$failed_names $name"
	fi
done
echo
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "test binaries: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
