#!/bin/sh
# The dashboard's browser tests: node's test runner with playwright-core from
# $B/e2e/node_modules (make e2e-deps) driving Debian's /usr/bin/chromium.
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
if [ ! -x /usr/bin/chromium ] || [ ! -d "$B/e2e/node_modules/playwright-core" ]; then
	echo "chromium or playwright-core missing (make deps e2e-deps): skipped"
	exit 0
fi
NODE_PATH="$(pwd)/$B/e2e/node_modules" B="$B" exec node --test --test-concurrency=1 tests/e2e/dashboard.test.js
