# Sourced by scripts/check-hiredis: fetches the hiredis 1.x C sources from PyPI and builds them into a prefix that
# pkg-config can find. The PyPI package `hiredis` (the Python binding) ships the C library's source in its sdist, under
# vendor/hiredis; each pinned sdist below is checked against its SHA-256 before anything in it is compiled.

# PyPI hiredis version -> "C library version SHA-256 of the sdist".
declare -A HIREDIS1_SDISTS=(
    [2.0.0]="1.0.0 81d6d8e39695f2c37954d1011c0480ef7cf444d4e3ae24bc5e89ee5de360139a"
    [3.5.0]="1.5.0 c227592cc56b7df247abe4755c26723965be68972be2149fa441ac33d82131ba"
)
# The oldest 1.x (the one furthest from Debian's 0.14) and the newest, in that order.
HIREDIS1_DEFAULT_SDISTS=(2.0.0 3.5.0)

# Where the sdists are kept between runs.
hiredis1_cache() {
    echo "${AESCHAT_HIREDIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/aeschat/hiredis}"
}

# The C library version an sdist vendors.
hiredis1_c_version() {
    local entry="${HIREDIS1_SDISTS[$1]}"
    echo "${entry%% *}"
}

# Prints the path of the verified sdist of PyPI hiredis $1, downloading it with pip when it is not cached.
# Returns 75 (temporary failure) with one line on stderr when PyPI cannot be reached, 65 on a checksum mismatch.
hiredis1_fetch() {
    local version="$1" entry="${HIREDIS1_SDISTS[$1]:-}"
    if [ -z "$entry" ]; then
        echo "Error: no pinned checksum for PyPI hiredis $version (pinned: ${!HIREDIS1_SDISTS[*]})" >&2
        return 64
    fi
    local expected="${entry##* }" cache sdist
    cache="$(hiredis1_cache)"
    sdist="$cache/hiredis-$version.tar.gz"
    if [ ! -f "$sdist" ]; then
        mkdir -p "$cache"
        local log
        log="$(mktemp)"
        # pip reads the sdist's metadata, for which it fetches the build backend (setuptools) from PyPI too.
        if ! timeout 180 python3 -m pip download --quiet --disable-pip-version-check --retries 1 --timeout 15 \
            --no-deps --no-binary :all: "hiredis==$version" -d "$cache" >"$log" 2>&1; then
            local reason
            reason="$(grep -m1 '^ERROR:' "$log" || tail -n1 "$log")"
            echo "Error: cannot download hiredis $version from PyPI (pip: ${reason:0:160}); check the network, or put" \
                "$(basename "$sdist") in $cache (AESCHAT_HIREDIS_CACHE)" >&2
            rm -f "$log"
            return 75
        fi
        rm -f "$log"
        if [ ! -f "$sdist" ]; then
            echo "Error: pip downloaded hiredis $version but $sdist is not there" >&2
            return 75
        fi
    fi
    local actual
    actual="$(sha256sum "$sdist" | cut -d' ' -f1)"
    if [ "$actual" != "$expected" ]; then
        echo "Error: $sdist has SHA-256 $actual, expected $expected; delete it and run again" >&2
        return 65
    fi
    echo "$sdist"
}

# Builds the hiredis C library vendored in sdist $1 into prefix $2 (lib/libhiredis.so, include/hiredis/*.h,
# lib/pkgconfig/hiredis.pc), the way its own Makefile lays it out; the sdist carries the sources but not the Makefile.
hiredis1_build() {
    local sdist="$1" prefix="$2" work
    work="$(mktemp -d)"
    tar -xzf "$sdist" -C "$work"
    local source
    source="$(echo "$work"/hiredis-*/vendor/hiredis)"
    if [ ! -f "$source/hiredis.h" ]; then
        echo "Error: $sdist has no vendor/hiredis/hiredis.h" >&2
        rm -rf "$work"
        return 65
    fi
    local major minor patch soname
    major="$(sed -n 's/^#define HIREDIS_MAJOR \([0-9]*\)$/\1/p' "$source/hiredis.h")"
    minor="$(sed -n 's/^#define HIREDIS_MINOR \([0-9]*\)$/\1/p' "$source/hiredis.h")"
    patch="$(sed -n 's/^#define HIREDIS_PATCH \([0-9]*\)$/\1/p' "$source/hiredis.h")"
    soname="$(sed -n 's/^#define HIREDIS_SONAME \([0-9.]*\)$/\1/p' "$source/hiredis.h")"
    mkdir -p "$prefix/lib/pkgconfig" "$prefix/include/hiredis"
    # The library's own object list (alloc, net, hiredis, sds, async, read, sockcompat; async.c includes dict.c).
    local objects=() name
    for name in alloc net hiredis sds async read sockcompat; do
        cc -std=c99 -O2 -fPIC -D_FILE_OFFSET_BITS=64 -c "$source/$name.c" -o "$work/$name.o"
        objects+=("$work/$name.o")
    done
    cc -shared -Wl,-soname,"libhiredis.so.$soname" -o "$prefix/lib/libhiredis.so.$soname" "${objects[@]}"
    ln -sf "libhiredis.so.$soname" "$prefix/lib/libhiredis.so"
    cp "$source"/{hiredis.h,async.h,read.h,sds.h,alloc.h} "$prefix/include/hiredis/"
    cat >"$prefix/lib/pkgconfig/hiredis.pc" <<EOF
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include
pkgincludedir=\${includedir}/hiredis

Name: hiredis
Description: hiredis $major.$minor.$patch built by aeschat's scripts/check-hiredis
Version: $major.$minor.$patch
Libs: -L\${libdir} -lhiredis
Cflags: -I\${pkgincludedir} -I\${includedir} -D_FILE_OFFSET_BITS=64
EOF
    # SwiftPM reads .pc files itself and keeps every -L, system folders included, in the order of the targets: in
    # some links libgcrypt's -L/usr/lib/<arch> comes first, and the linker takes Debian's 0.14 from there (when
    # libhiredis-dev is installed) for code compiled against these 1.x headers. This prefix's libgcrypt.pc has no -L
    # (that folder is searched anyway). The shim's link-time guard and the NEEDED check in check-hiredis catch a miss.
    local gcrypt_pc
    gcrypt_pc="$(PKG_CONFIG_PATH='' pkg-config --variable=pcfiledir libgcrypt 2>/dev/null)/libgcrypt.pc"
    if [ -f "$gcrypt_pc" ]; then
        sed -e 's/^Libs:.*/Libs: -lgcrypt/' "$gcrypt_pc" >"$prefix/lib/pkgconfig/libgcrypt.pc"
    fi
    rm -rf "$work"
}
