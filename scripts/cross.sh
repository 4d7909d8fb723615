#!/bin/sh
# Cross builds for the Raspberry Pi: arm64 (64-bit Raspberry Pi OS, Pi 3/4/5)
# and armhf (32-bit Raspberry Pi OS, Pi 2 and later), with Debian's cross
# compilers and the target's libraries installed side by side (multiarch);
# the unit tests then run under qemu-user.
#
#   scripts/cross.sh deps  ARCH            install what is missing (see below)
#   scripts/cross.sh build ARCH [OUT]      hearthd, hearthctl, plugins, unit tests
#   scripts/cross.sh test  ARCH [OUT]      build, then run the unit tests in qemu
#
# OUT defaults to build-ARCH. "deps" changes the machine's apt setup: it adds
# ARCH as a foreign architecture (dpkg --add-architecture) and installs
# gcc-TRIPLET, the -dev:ARCH libraries and qemu-user. It does so only when
# something is missing, and build and test call it first. Undo it with
# "apt-get purge '*:ARCH' gcc-TRIPLET && dpkg --remove-architecture ARCH".
#
# Measured on the 2-core development machine (Debian 12), arm64: installing
# the cross tools and libraries the first time 72 s; a clean build of
# everything with the unit tests 99 s; the 33 unit test binaries under
# qemu-aarch64 69 s (test_store the longest, 29 s); make test-arm64 from
# nothing 3 min. armhf needs bookworm-security's armhf index to match the
# machine's security updates (multiarch wants equal versions).
set -eu

usage() {
	echo "usage: scripts/cross.sh deps|build|test arm64|armhf [OUT]" >&2
	exit 2
}
[ $# -ge 2 ] || usage
action=$1
arch=$2
out=${3:-build-$arch}
case $out in /*) ;; *) out=$(pwd)/$out ;; esac
case $arch in
arm64) triplet=aarch64-linux-gnu; qemu=qemu-aarch64 ;;
armhf) triplet=arm-linux-gnueabihf; qemu=qemu-arm ;;
*) usage ;;
esac
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

# Build tools for this machine only (the fuzzers' runtime), never for ARCH.
HOST_ONLY='libclang-rt-dev'
# The target's libraries: the -dev packages the Makefile's "make deps" installs
# for this machine (and the run-time modules it names), for ARCH.
LIBS=$(make -p -n -q 2>/dev/null | sed -n 's/^DEPS_PKGS :\?= //p' | head -n 1 |
	tr ' ' '\n' | grep -E -- '-dev$|-evlib-' | grep -vxE "$HOST_ONLY" | tr '\n' ' ')
[ -n "$LIBS" ] || { echo "cross.sh: no DEPS_PKGS in the Makefile" >&2; exit 1; }

# -dev packages that bookworm cannot install for two architectures at once
# (libwebsockets-dev: its lws_config.h differs between them). Their target
# files are unpacked into OUT/sysroot instead, their dependencies installed
# as usual.
SEPARATE="libwebsockets-dev"
sysroot=$out/sysroot

separate() {
	case " $SEPARATE " in *" $1 "*) return 0 ;; esac
	return 1
}

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"
}

deps() {
	missing=""
	for p in gcc-$triplet qemu-user; do
		installed "$p" || missing="$missing $p"
	done
	for p in $LIBS; do
		if separate "$p"; then
			for d in $(apt-cache depends "$p:$arch" 2>/dev/null |
				sed -n 's/^  Depends: \([^<>]*\)$/\1/p'); do
				installed "$d" || missing="$missing $d"
			done
		else
			installed "$p:$arch" || missing="$missing $p:$arch"
		fi
	done
	if [ -n "$missing" ]; then
		apt_install $missing
	fi
	for p in $SEPARATE; do
		case " $LIBS " in *" $p "*) unpack_separate "$p" ;; esac
	done
}

apt_install() {
	echo "cross.sh: installing: $*"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo=sudo
	if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		echo "cross.sh: adding $arch as a foreign architecture (dpkg --add-architecture $arch)"
		$sudo dpkg --add-architecture "$arch"
	fi
	# an index that fails to download (a mirror mid-sync) is not fatal here;
	# the install below says so if a package is really missing
	$sudo apt-get update -q || echo "cross.sh: apt-get update reported errors; trying anyway" >&2
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "$@"
}

# Unpack PKG:ARCH into the sysroot; its links to the shared libraries point
# at the installed ones.
unpack_separate() {
	stamp=$sysroot/.$1
	[ -e "$stamp" ] && return 0
	mkdir -p "$sysroot/debs"
	(cd "$sysroot/debs" && apt-get download -q "$1:$arch")
	dpkg-deb -x "$sysroot"/debs/"$1"_*_"$arch".deb "$sysroot"
	for l in "$sysroot/usr/lib/$triplet"/*.so; do
		[ -L "$l" ] && [ ! -e "$l" ] && ln -sf "/usr/lib/$triplet/$(readlink "$l")" "$l"
	done
	touch "$stamp"
}

# Under qemu everything runs several times slower: tests that bound their own
# speed take the sanitizer builds' limits (SLOW_BUILD).
TEST_CFLAGS="-DSLOW_BUILD=1"

# The make command line for the target; pkg-config reads the target's .pc
# files only.
cross_make() {
	PKG_CONFIG_LIBDIR=$sysroot/usr/lib/$triplet/pkgconfig:/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig \
	PKG_CONFIG_PATH= \
		make --no-print-directory B="$out" CC="$triplet-gcc" AR="$triplet-ar" \
		CFLAGS="-I$sysroot/usr/include $TEST_CFLAGS" LDFLAGS="-L$sysroot/usr/lib/$triplet" "$@"
}

unit_targets() {
	for t in tests/unit/test_*.c; do
		printf '%s ' "$out/tests/unit/$(basename "$t" .c)"
	done
	for f in tests/fixtures/plugins/*.c; do
		[ -e "$f" ] && printf '%s ' "$out/tests/plugins/$(basename "$f" .c).so"
	done
}

now_s() {
	date +%s
}

build() {
	deps
	start=$(now_s)
	# shellcheck disable=SC2046
	cross_make all $(unit_targets)
	echo "cross.sh: $arch build took $(( $(now_s) - start )) s"
	file "$out/hearthd" | sed 's/, BuildID.*//'
}

# The target's C library for qemu: the multiarch libc6:ARCH that the -dev
# packages bring (-L /). Not /usr/TRIPLET: that loader is the cross
# compiler's libc (libc6-ARCH-cross), a different build than the libc.so.6
# the binaries then find in /lib/TRIPLET, and a program mixing the two hangs
# in its first pthread_create.
qemu_prefix=/

run_tests() {
	build
	passed=0
	failed=0
	failed_names=""
	start=$(now_s)
	logs=$out/qemu-logs
	mkdir -p "$logs"
	for t in "$out"/tests/unit/test_*; do
		name=$(basename "$t")
		case $name in *.*) continue ;; esac
		t0=$(now_s)
		if B="$out" timeout 600 "$qemu" -L "$qemu_prefix" "$t" >"$logs/$name.log" 2>&1; then
			passed=$((passed + 1))
			echo "== $name: passed ($(( $(now_s) - t0 )) s)"
		else
			failed=$((failed + 1))
			failed_names="$failed_names $name"
			echo "== $name: FAILED ($(( $(now_s) - t0 )) s), log: $logs/$name.log"
			tail -n 20 "$logs/$name.log"
		fi
	done
	echo
	[ -n "$failed_names" ] && echo "failed:$failed_names"
	echo "$arch unit tests under $qemu: $passed passed, $failed failed in $(( $(now_s) - start )) s"
	[ "$failed" -eq 0 ]
}

case $action in
deps) deps ;;
build) build ;;
test) run_tests ;;
*) usage ;;
esac
