#!/bin/sh
# Check a hearth .deb: its control fields, Depends against what its ELF
# files link, its files and conffiles, its maintainer scripts; then (as
# root) install, reinstall, remove and purge it in a fresh folder with
# dpkg --root and --force-script-chrootless (the scripts honour DPKG_ROOT),
# checking the user, the state folder, the enabled unit, a kept conffile,
# data kept on remove and deleted on purge.
#   scripts/test-deb.sh PACKAGE.deb
set -eu
deb=$1
[ -f "$deb" ] || { echo "test-deb: no $deb" >&2; exit 2; }
work=$(mktemp -d /tmp/hearth-deb-XXXXXX)
trap 'rm -rf "$work"' EXIT INT TERM
failures=0
fail() {
	echo "test-deb: FAIL: $*" >&2
	failures=$((failures + 1))
}
ok() {
	echo "test-deb: ok: $*"
}

field() {
	dpkg-deb --field "$deb" "$1"
}
[ "$(field Package)" = hearth ] || fail "Package is '$(field Package)'"
arch=$(field Architecture)
case $(field Version) in *-1) ;; *) fail "Version '$(field Version)'" ;; esac
for f in Maintainer Description Installed-Size Section Priority; do
	[ -n "$(field "$f")" ] || fail "no $f field"
done
depends=$(field Depends)
for p in libuv1 libmosquitto1 libsqlite3-0 libcjson1 libinih1 libsystemd0 libssl3 adduser; do
	echo "$depends" | grep -Eq "(^|, )$p( |,|$)" || fail "Depends lacks $p: $depends"
done
ok "control fields ($arch): Depends: $depends"

dpkg-deb --extract "$deb" "$work/x"
dpkg-deb --control "$deb" "$work/control"
find "$work/x" -type f | while read -r f; do
	if file -b "$f" | grep -q '^ELF'; then echo "$f"; fi
done >"$work/elves"
[ -s "$work/elves" ] || fail "no ELF files"
# every library an ELF file links comes from a package in Depends (this
# machine's packages: only for a package of this machine's architecture)
if [ "$arch" = "$(dpkg --print-architecture)" ]; then
	xargs readelf -d <"$work/elves" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | sort -u >"$work/needed"
	while read -r so; do
		path=$(ldconfig -p | awk -v so="$so" '$1 == so { print $NF; exit }')
		[ -n "$path" ] || { fail "$so: not found on this machine"; continue; }
		pkg=$(dpkg -S "$(readlink -f "$path")" 2>/dev/null | head -n 1 | cut -d: -f1)
		[ -n "$pkg" ] || pkg=$(dpkg -S "$path" 2>/dev/null | head -n 1 | cut -d: -f1)
		echo "$depends" | grep -Eq "(^|, )$pkg( |,|$)" || fail "$so comes from $pkg, not in Depends"
	done <"$work/needed"
	ok "every linked library ($(wc -l <"$work/needed")) is in Depends"
fi

for p in usr/bin/hearthd usr/bin/hearthctl usr/lib/hearth/plugins/virtual.so \
	usr/lib/hearth/plugins/zigbee.so usr/include/hearth/plugin.h \
	usr/lib/pkgconfig/hearth-plugin.pc etc/hearth/hearth.conf etc/hearth/rules \
	lib/systemd/system/hearth.service lib/systemd/system/hearth-backup.timer \
	usr/lib/sysusers.d/hearth.conf usr/share/man/man8/hearthd.8.gz \
	usr/share/man/man1/hearthctl.1.gz usr/share/man/man5/hearth.conf.5.gz \
	usr/share/doc/hearth/getting-started.md usr/share/doc/hearth/changelog.Debian.gz; do
	[ -e "$work/x/$p" ] || fail "missing /$p"
done
grep -qx 'ExecStart=/usr/bin/hearthd -c /etc/hearth/hearth.conf' \
	"$work/x/lib/systemd/system/hearth.service" || fail "ExecStart of the unit"
grep -qx 'plugindir=/usr/lib/hearth/plugins' "$work/x/usr/lib/pkgconfig/hearth-plugin.pc" ||
	fail "plugindir in hearth-plugin.pc"
if dpkg-deb --contents "$deb" | awk '{ print $2 }' | grep -vqx 'root/root'; then
	fail "files not owned by root/root"
fi
if xargs file <"$work/elves" | grep -q 'not stripped'; then
	fail "unstripped ELF files"
fi
[ "$(cat "$work/control/conffiles")" = /etc/hearth/hearth.conf ] || fail "conffiles"
for s in postinst prerm postrm; do
	[ -x "$work/control/$s" ] || fail "$s missing or not executable"
	sh -n "$work/control/$s" || fail "$s does not parse"
done
(cd "$work/x" && md5sum -c --quiet "$work/control/md5sums") || fail "md5sums"
ok "files, conffiles, maintainer scripts, md5sums"

if [ "$(id -u)" != 0 ]; then
	echo "test-deb: not root: installing into a temporary root is skipped"
	[ "$failures" -eq 0 ]
	exit
fi
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
: >"$root/var/lib/dpkg/status"
force_arch=""
[ "$arch" = "$(dpkg --print-architecture)" ] || force_arch=--force-architecture
dpkg_root() {
	dpkg --root="$root" --force-script-chrootless --force-depends --force-not-root \
		--force-confold $force_arch "$@" >>"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg $*"; }
}
dpkg_root -i "$deb"
uid=$(awk -F: '$1 == "hearth" { print $3 }' "$root/etc/passwd" 2>/dev/null)
gid=$(awk -F: '$1 == "hearth" { print $3 }' "$root/etc/group" 2>/dev/null)
if command -v systemd-sysusers >/dev/null 2>&1; then
	[ -n "$uid" ] && [ -n "$gid" ] || fail "postinst created no hearth user"
	[ "$(stat -c %u:%g "$root/var/lib/hearth")" = "$uid:$gid" ] || fail "owner of /var/lib/hearth"
	[ "$(stat -c %g "$root/etc/hearth/hearth.conf")" = "$gid" ] || fail "group of hearth.conf"
fi
[ "$(stat -c %a "$root/var/lib/hearth")" = 750 ] || fail "mode of /var/lib/hearth"
[ "$(stat -c %a "$root/etc/hearth/hearth.conf")" = 640 ] || fail "mode of hearth.conf"
if command -v systemctl >/dev/null 2>&1; then
	[ -L "$root/etc/systemd/system/multi-user.target.wants/hearth.service" ] ||
		fail "hearth.service not enabled"
	[ ! -e "$root/etc/systemd/system/timers.target.wants/hearth-backup.timer" ] ||
		fail "the backup timer was enabled unasked"
fi
[ "$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}' hearth)" = "install ok installed" ] ||
	fail "dpkg status"
# the installed hearthd runs: natively, or under qemu-user for arm64/armhf
run=""
case $arch in
"$(dpkg --print-architecture)") run=" " ;;
arm64) command -v qemu-aarch64 >/dev/null 2>&1 && run="qemu-aarch64 -L /" ;;
armhf) command -v qemu-arm >/dev/null 2>&1 && run="qemu-arm -L /" ;;
esac
if [ -n "$run" ]; then
	$run "$root/usr/bin/hearthd" --version | grep -q '^hearthd ' || fail "installed hearthd does not run"
fi
ok "installed into $root: user $uid, /var/lib/hearth, enabled, not started"

echo "# changed" >>"$root/etc/hearth/hearth.conf"
dpkg_root -i "$deb"
grep -q '^# changed' "$root/etc/hearth/hearth.conf" || fail "reinstall replaced a changed conffile"
echo data >"$root/var/lib/hearth/hearth.db"
dpkg_root -r hearth
[ -e "$root/usr/bin/hearthd" ] && fail "remove left /usr/bin/hearthd"
[ -e "$root/var/lib/hearth/hearth.db" ] || fail "remove deleted the database"
[ -e "$root/etc/hearth/hearth.conf" ] || fail "remove deleted the configuration"
ok "reinstall keeps a changed conffile; remove keeps data and configuration"
dpkg_root -P hearth
[ -e "$root/var/lib/hearth" ] && fail "purge left /var/lib/hearth"
[ -e "$root/etc/hearth" ] && fail "purge left /etc/hearth"
[ -L "$root/etc/systemd/system/multi-user.target.wants/hearth.service" ] &&
	fail "purge left the service enabled"
ok "purge deletes data, configuration and enablement"

[ "$failures" -eq 0 ] || { echo "test-deb: $failures failures" >&2; exit 1; }
echo "test-deb: passed"
