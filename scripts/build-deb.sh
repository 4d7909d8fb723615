#!/bin/sh
# Build the Debian package with dpkg-deb (no debhelper needed):
#   scripts/build-deb.sh OUT [ARCH]
# OUT/hearth_VERSION-1_ARCH.deb, staged from "make install PREFIX=/usr" in a
# build folder of its own (OUT/build-ARCH: paths are compiled in). ARCH other
# than the machine's (arm64, armhf) cross-builds as scripts/cross.sh does.
# Depends comes from dpkg-shlibdeps over every ELF file in the package, plus
# what is loaded at run time without being linked.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-build/deb}
native=$(dpkg --print-architecture)
arch=${2:-$native}
case $out in /*) ;; *) out=$here/$out ;; esac
cd "$here"
version=$(sed -n 's/^VERSION := //p' Makefile)
stage=$out/stage-$arch
deb=$out/hearth_${version}-1_${arch}.deb
build=$out/build-$arch

strip=strip
set -- B="$build" PREFIX=/usr SYSCONFDIR=/etc SYSTEMDUNITDIR=/lib/systemd/system \
	DESTDIR="$stage" WERROR=0
if [ "$arch" != "$native" ]; then
	case $arch in
	arm64) triplet=aarch64-linux-gnu ;;
	armhf) triplet=arm-linux-gnueabihf ;;
	*) echo "build-deb: no cross build for $arch" >&2; exit 2 ;;
	esac
	# the same compiler, libraries and sysroot as "make cross-$arch"
	sh scripts/cross.sh deps "$arch" "$build"
	sysroot=$build/sysroot
	export PKG_CONFIG_LIBDIR=$sysroot/usr/lib/$triplet/pkgconfig:/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig
	export PKG_CONFIG_PATH=
	set -- "$@" CC="$triplet-gcc" AR="$triplet-ar" CFLAGS="-I$sysroot/usr/include" \
		LDFLAGS="-L$sysroot/usr/lib/$triplet"
	strip=$triplet-strip
fi

rm -rf "$stage"
mkdir -p "$stage/DEBIAN"
make --no-print-directory "$@" install

# what Debian expects of a binary package's files
find "$stage" -type f \( -perm -u+x -o -name '*.so' \) -exec sh -c \
	'file -b "$1" | grep -q "^ELF"' sh {} \; -print >"$out/elf-$arch.list"
xargs "$strip" --strip-unneeded --remove-section=.comment --remove-section=.note \
	<"$out/elf-$arch.list"
gzip -9n "$stage"/usr/share/man/man*/*
mkdir -p "$stage/usr/share/doc/hearth"
printf 'hearth (%s-1) unstable; urgency=medium\n\n  * Package built from the hearth tree.\n\n -- hearth maintainers <maintainers@hearth.invalid>  %s\n' \
	"$version" "$(date -R)" | gzip -9n >"$stage/usr/share/doc/hearth/changelog.Debian.gz"

# Depends: the libraries linked, as dpkg-shlibdeps finds their packages;
# libwebsockets loads its libuv event library with dlopen, unseen by it.
shlib=$out/shlibdeps-$arch
rm -rf "$shlib"
mkdir -p "$shlib/debian"
printf 'Source: hearth\n\nPackage: hearth\nArchitecture: any\n' >"$shlib/debian/control"
elves=$(sed "s|^|-e|" "$out/elf-$arch.list" | tr '\n' ' ')
# shellcheck disable=SC2086
depends=$(cd "$shlib" && DEB_HOST_ARCH=$arch dpkg-shlibdeps -O --ignore-missing-info \
	$elves 2>"$out/shlibdeps-$arch.log" | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { cat "$out/shlibdeps-$arch.log" >&2; echo "build-deb: no Depends" >&2; exit 1; }
if xargs readelf -d <"$out/elf-$arch.list" 2>/dev/null | grep -q 'NEEDED.*libwebsockets'; then
	depends="$depends, libwebsockets-evlib-uv"
fi
depends="$depends, adduser"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
	-e "s|@DEPENDS@|$depends|" packaging/deb/control.in >"$stage/DEBIAN/control"
install -m 644 packaging/deb/conffiles "$stage/DEBIAN/conffiles"
install -m 755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
	xargs md5sum >DEBIAN/md5sums)
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "build-deb: $deb"
echo "build-deb: Depends: $depends"
