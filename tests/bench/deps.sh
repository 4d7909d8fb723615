#!/bin/sh
# What make bench needs beyond make deps: python3 (the runner and the
# tables), valgrind (instructions per message) and npm, which installs the
# pinned Node-RED (package.json, package-lock.json) into tests/bench/node_modules.
# A missing piece is installed with apt-get when it can be; without npm or the
# registry the benchmark still runs, without Node-RED.
cd "$(dirname "$0")" || exit 1
missing=""
for c in python3 valgrind npm; do
	command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
if [ -n "$missing" ] && command -v apt-get >/dev/null 2>&1; then
	echo "installing:$missing"
	if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
	$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing ||
		echo "warning: could not install$missing"
fi
command -v python3 >/dev/null 2>&1 || { echo "python3 is needed for make bench"; exit 1; }
if [ ! -x node_modules/.bin/node ] || [ ! -f node_modules/node-red/red.js ]; then
	if command -v npm >/dev/null 2>&1; then
		npm ci --no-audit --no-fund --loglevel=error ||
			echo "warning: Node-RED could not be installed; the benchmark runs without it"
	else
		echo "warning: npm is missing; the benchmark runs without Node-RED"
	fi
fi
exit 0
