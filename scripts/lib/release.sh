# Sourced by scripts/aeschat, scripts/install and scripts/package: builds the release aeschat only when its sources
# changed since the last build through this file, quietly, always the same way.
#
#   release_build            the release binary in .build (the one scripts/bench builds too), for scripts/aeschat
#   release_build static     the same with the Swift runtime linked in (--static-swift-stdlib), so that it needs
#                            only C libraries (libgcrypt, hiredis, libstdc++, libc): what scripts/install and
#                            scripts/package ship. It lives in .build/static, because swift build compiles every
#                            module again when that flag changes, and the two builds would otherwise undo each other.
#
# Sets release_bin, the binary's path. The build's output goes to a log file (shown only when the build fails), so
# swift build never sees a terminal: its colour setting (on for a terminal, off otherwise) is the same for every call,
# and a call from a terminal does not recompile what a call from a pipe built, or the other way round. Two stamp
# files beside the build are written after each successful build: aeschat-release.stamp, dated when the build
# started, and aeschat-release.binary, dated like the binary it made. The next call builds again only if the binary
# or a stamp is missing, Package.swift, Package.resolved or anything under Sources/ (a file, or a folder that gained
# or lost one) is newer than the first stamp, or the binary is not the one this file built (another swift build
# linked it since). AESCHAT_BUILD_LOG=FILE puts the build log elsewhere (the default is aeschat-release.log there).

release_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

release_build() {
    local scratch="$release_root/.build" flags=()
    if [ "${1:-}" = static ]; then
        scratch="$release_root/.build/static"
        flags=(--scratch-path "$scratch" --static-swift-stdlib)
    fi
    release_bin="$scratch/release/aeschat"
    local stamp="$scratch/aeschat-release.stamp" built="$scratch/aeschat-release.binary"
    if [ -x "$release_bin" ] && [ -f "$stamp" ] && [ -f "$built" ] &&
        ! [ "$release_bin" -nt "$built" ] && ! [ "$release_bin" -ot "$built" ] &&
        [ -z "$(find "$release_root/Package.swift" "$release_root/Package.resolved" "$release_root/Sources" \
            -newer "$stamp" -print -quit 2>/dev/null)" ]; then
        return 0
    fi
    local log="${AESCHAT_BUILD_LOG:-$scratch/aeschat-release.log}"
    source "$release_root/scripts/lib/dependencies.sh"
    ensure_libgcrypt >&2 || return
    ensure_hiredis >&2 || return
    mkdir -p "$scratch" "$(dirname "$log")"
    echo "building aeschat (release${1:+, $1}, log in $log) ..." >&2
    # The stamp's time is the build's start, so that a source saved during the build counts as newer.
    local started
    started="$(mktemp "$scratch/aeschat-release.XXXXXX")"
    if ! swift build --package-path "$release_root" -c release --product aeschat ${flags[@]+"${flags[@]}"} \
        </dev/null >"$log" 2>&1; then
        rm -f "$started"
        cat "$log" >&2
        echo "Error: building aeschat failed (log in $log)" >&2
        return 1
    fi
    mv -f "$started" "$stamp"
    touch -r "$release_bin" "$built"
}
