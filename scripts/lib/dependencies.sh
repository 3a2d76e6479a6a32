# Sourced by the scripts: installs what building and testing aeschat needs, when it is missing.
# libgcrypt, hiredis, redis-server and tmux come from apt (Debian, Ubuntu) or Homebrew (macOS); pytest from pip.

# Installs Debian packages with apt-get (through sudo unless root); the ensure_ functions below call it once they
# know apt-get is there.
apt_install() {
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

ensure_libgcrypt() {
    if pkg-config --exists libgcrypt 2>/dev/null || [ -f /usr/include/gcrypt.h ]; then
        return 0
    fi
    echo "libgcrypt development files are missing; installing them" >&2
    if command -v apt-get >/dev/null 2>&1; then
        apt_install libgcrypt20-dev pkg-config
    elif command -v brew >/dev/null 2>&1; then
        brew install libgcrypt pkg-config
    else
        echo "Error: install libgcrypt (Debian: libgcrypt20-dev, Homebrew: libgcrypt) and try again" >&2
        return 69
    fi
}

# hiredis (its command encoder and reply reader) is linked into aeschat for the relays of a cluster (serve --cluster).
ensure_hiredis() {
    if pkg-config --exists hiredis 2>/dev/null; then
        return 0
    fi
    echo "hiredis development files are missing; installing them" >&2
    if command -v apt-get >/dev/null 2>&1; then
        apt_install libhiredis-dev pkg-config
    elif command -v brew >/dev/null 2>&1; then
        brew install hiredis pkg-config
    else
        echo "Error: install hiredis (Debian: libhiredis-dev, Homebrew: hiredis) and try again" >&2
        return 69
    fi
}

# redis-server for the tests of the cluster (each test starts its own on a free loopback port, persistence off, and
# ends it by PID). Debian's package starts a system service on port 6379 where it can: it is stopped and disabled at
# once, since nothing here uses it.
ensure_redis_server() {
    if command -v redis-server >/dev/null 2>&1; then
        return 0
    fi
    echo "redis-server is missing; installing it" >&2
    if command -v apt-get >/dev/null 2>&1; then
        apt_install redis-server
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo service redis-server stop >/dev/null 2>&1 || true
        $sudo systemctl disable redis-server >/dev/null 2>&1 || true
    elif command -v brew >/dev/null 2>&1; then
        brew install redis
    else
        echo "Error: install redis-server (Debian: apt-get install redis-server, Homebrew: brew install redis)" >&2
        return 69
    fi
}

ensure_pytest() {
    if python3 -c "import pytest" 2>/dev/null; then
        return 0
    fi
    echo "pytest is missing; installing it" >&2
    python3 -m pip install --quiet pytest || {
        echo "Error: cannot install pytest; install it with 'python3 -m pip install pytest'" >&2
        return 69
    }
}

# tmux drives the interactive terminal in the end-to-end tests (Tests/e2e/test_terminal.py); those
# tests fail rather than skip without it.
ensure_tmux() {
    if command -v tmux >/dev/null 2>&1; then
        return 0
    fi
    echo "tmux is missing; installing it" >&2
    if command -v apt-get >/dev/null 2>&1; then
        apt_install tmux
    elif command -v brew >/dev/null 2>&1; then
        brew install tmux
    else
        echo "Error: install tmux (Debian: apt-get install tmux, Homebrew: brew install tmux) and try again" >&2
        return 69
    fi
}

# The IRC servers that scripts/bench-irc measures aeschat's relay against (not needed to build or test).
ensure_irc_servers() {
    if command -v inspircd >/dev/null 2>&1 && command -v ngircd >/dev/null 2>&1; then
        return 0
    fi
    echo "inspircd or ngircd is missing; installing them" >&2
    if command -v apt-get >/dev/null 2>&1; then
        apt_install inspircd ngircd
    else
        echo "Error: install inspircd and ngircd (Debian: apt-get install inspircd ngircd) and try again" >&2
        return 69
    fi
}

# dpkg-dev gives scripts/package dpkg-shlibdeps (dpkg-deb itself is part of dpkg).
ensure_dpkg_dev() {
    if command -v dpkg-shlibdeps >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "Error: building a Debian package needs dpkg-deb and dpkg-shlibdeps (Debian: apt-get install dpkg-dev)" >&2
        return 69
    fi
    echo "dpkg-dev is missing; installing it" >&2
    apt_install dpkg-dev
}

# man-db gives the package test 'man -l', to read the unpacked man page.
ensure_man() {
    if command -v man >/dev/null 2>&1; then
        return 0
    fi
    echo "man-db is missing; installing it" >&2
    if command -v apt-get >/dev/null 2>&1; then
        apt_install man-db
    elif command -v brew >/dev/null 2>&1; then
        return 0 # macOS has man
    else
        echo "Error: install man-db (Debian: apt-get install man-db) and try again" >&2
        return 69
    fi
}
