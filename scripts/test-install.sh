#!/bin/sh
# make install into a temporary root, check what landed where, then build
# examples/plugin-out-of-tree from the staged header and hearth-plugin.pc
# alone and load it into the staged hearthd against a private mosquitto on
# a free loopback port.
#   scripts/test-install.sh [BUILD_DIR]
set -eu
B=${1:-build}
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
work=$(mktemp -d /tmp/hearth-install-XXXXXX)
stage=$work/root
broker_pid=""
hub_pid=""
cleanup() {
	[ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null && wait "$hub_pid" 2>/dev/null
	[ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
fail() {
	echo "test-install: FAIL: $*" >&2
	exit 1
}
check() {
	[ -e "$stage$1" ] || fail "missing $1"
}

make --no-print-directory B="$B" DESTDIR="$stage" install >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log"; fail "make install"; }
for f in /usr/local/bin/hearthd /usr/local/bin/hearthctl /usr/local/include/hearth/plugin.h \
	/usr/local/lib/pkgconfig/hearth-plugin.pc /usr/local/lib/hearth/plugins/virtual.so \
	/etc/hearth/hearth.conf /etc/hearth/rules /lib/systemd/system/hearth.service \
	/usr/local/lib/sysusers.d/hearth.conf /usr/local/share/man/man8/hearthd.8 \
	/usr/local/share/man/man1/hearthctl.1 /usr/local/share/man/man5/hearth.conf.5 \
	/usr/local/share/doc/hearth/getting-started.md /usr/local/share/doc/hearth/dropins/serial.conf \
	/usr/local/share/doc/hearth/examples/plugin-out-of-tree/hello.c; do
	check "$f"
done
grep -qx 'ExecStart=/usr/local/bin/hearthd -c /etc/hearth/hearth.conf' \
	"$stage/lib/systemd/system/hearth.service" || fail "ExecStart of the installed unit"
[ "$(stat -c %a "$stage/etc/hearth/hearth.conf")" = 640 ] || fail "mode of hearth.conf"
echo "# kept" >>"$stage/etc/hearth/hearth.conf"
make --no-print-directory B="$B" DESTDIR="$stage" install >/dev/null 2>&1 || fail "second install"
grep -q '^# kept' "$stage/etc/hearth/hearth.conf" || fail "a second install overwrote hearth.conf"
echo "test-install: installed files in place; hearth.conf kept on reinstall"

# The example, copied away from the source tree, sees only the staged files.
cp -r examples/plugin-out-of-tree "$work/hello"
rm -f "$work/hello/hello.so"
PKG_CONFIG_PATH="$stage/usr/local/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$stage" \
	make --no-print-directory -C "$work/hello" CFLAGS="-O2 -Werror" >"$work/hello.log" 2>&1 ||
	{ cat "$work/hello.log"; fail "building the out-of-tree plugin"; }
grep -q -- "-I$stage/usr/local/include" "$work/hello.log" || fail "not built from the staged header"
exports=$(nm -D --defined-only "$work/hello/hello.so" | awk '$2 == "T" { print $3 }')
[ "$exports" = hearth_plugin_entry ] || fail "hello.so exports: $exports"
echo "test-install: hello.so built out of tree, exporting only hearth_plugin_entry"

# Load it: a private broker, the staged hearthd, the plugin folder of the stage.
plugins=$stage/usr/local/lib/hearth/plugins
install -m 644 "$work/hello/hello.so" "$plugins/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/mosquitto.conf"
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
broker_pid=$!
cat >"$work/hearth.conf" <<CONF
[mqtt]
port = $port
client_id = hearthd-install-test-$$
[store]
path = $work/hearth.db
[plugins]
dir = $plugins
enable = hello
[plugin.hello]
interval_s = 1
CONF
"$stage/usr/local/bin/hearthd" --check-config -c "$work/hearth.conf" >/dev/null ||
	fail "config check"
sleep 0.3
"$stage/usr/local/bin/hearthd" -c "$work/hearth.conf" >"$work/hearthd.log" 2>&1 &
hub_pid=$!
state=$(timeout 10 mosquitto_sub -p "$port" -t hearth/hello/switch -C 1 -W 8 2>/dev/null || true)
echo "$state" | grep -q '"state":"OFF"' || { cat "$work/hearthd.log"; fail "no state from hello/switch: $state"; }
mosquitto_pub -p "$port" -t hearth/hello/switch/set -m '{"state":"ON"}'
on=$(timeout 10 mosquitto_sub -p "$port" -t hearth/hello/switch -C 2 -W 8 2>/dev/null | tail -n 1 || true)
echo "$on" | grep -q '"state":"ON"' || { cat "$work/hearthd.log"; fail "hello/switch did not turn on: $on"; }
kill "$hub_pid"
wait "$hub_pid" || fail "hearthd exit status"
hub_pid=""
echo "test-install: hearthd loaded hello.so; hello/switch reports and obeys"
echo "test-install: passed"
