#!/bin/sh
# Check the systemd units offline: each parses without a warning;
# systemd-analyze security rates hearth.service at most MAX (default 2.0);
# the same for hearth.service with each drop-in of systemd/dropins/ applied
# and for hearth-backup.service (scores printed, not limited: a drop-in
# opens what its hardware needs); the timer's calendar is valid.
#   scripts/check-unit.sh [MAX]
set -eu
max=${1:-2.0}
here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "check-unit: systemd-analyze not found (apt-get install systemd)" >&2
	exit 1
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT INT TERM
units=$root/etc/systemd/system
mkdir -p "$units/hearth.service.d"
cp "$here"/systemd/*.service "$here"/systemd/*.timer "$units/"

# score UNIT LABEL: print the exposure; fail on any parse warning.
score() {
	out=$(systemd-analyze security --offline=yes --root="$root" "$1" 2>"$root/err") || true
	if grep -Ei 'unknown|failed|invalid|ignoring|bad' "$root/err" >&2; then
		echo "check-unit: $2: systemd does not accept it" >&2
		return 1
	fi
	s=$(echo "$out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	[ -n "$s" ] || { echo "check-unit: $2: no score" >&2; return 1; }
	echo "$s"
}

base=$(score hearth.service hearth.service)
echo "hearth.service: exposure $base (limit $max)"
if ! awk -v s="$base" -v m="$max" 'BEGIN { exit !(s <= m) }'; then
	echo "check-unit: exposure $base is above $max" >&2
	exit 1
fi
for d in "$here"/systemd/dropins/*.conf; do
	[ -e "$d" ] || continue
	rm -f "$units"/hearth.service.d/*
	cp "$d" "$units/hearth.service.d/"
	echo "hearth.service + $(basename "$d"): exposure $(score hearth.service "$(basename "$d")")"
done
echo "hearth-backup.service: exposure $(score hearth-backup.service hearth-backup.service)"
# verify also complains of what a bare root lacks; only parse errors,
# "FILE:LINE: ...", count
systemd-analyze verify --root="$root" hearth-backup.timer 2>"$root/err" >/dev/null || true
if grep -E 'hearth-backup\.timer:[0-9]+:' "$root/err" >&2; then
	echo "check-unit: hearth-backup.timer: systemd does not accept it" >&2
	exit 1
fi
cal=$(sed -n 's/^OnCalendar=//p' "$here/systemd/hearth-backup.timer")
systemd-analyze calendar "$cal" >/dev/null || { echo "check-unit: bad OnCalendar '$cal'" >&2; exit 1; }
echo "hearth-backup.timer: OnCalendar=$cal is valid"
