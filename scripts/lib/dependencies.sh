# Sourced by the scripts: installs what building and testing aeschat needs, when it is missing.
# libgcrypt, hiredis, redis-server and tmux come from apt (Debian, Ubuntu) or Homebrew (macOS); pytest from pip.

# Installs Debian packages with apt-get (through sudo unless root); ensure_installed calls it once it knows apt-get
# is there.
apt_install() {
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# ensure_installed WHAT APT BREW CHECK...: does nothing if the command CHECK (with its arguments) succeeds; else
# installs the Debian packages APT with apt-get, or the Homebrew formulae BREW with brew (each a space-separated list;
# BREW empty: none on Homebrew, "-": macOS has it already). Without either, it says what to install and returns 69.
ensure_installed() {
    local what="$1" apt="$2" brew="$3"
    shift 3
    if "$@" >/dev/null 2>&1; then
        return 0
    fi
    if command -v apt-get >/dev/null 2>&1; then
        echo "missing: $what; installing $apt" >&2
        # shellcheck disable=SC2086 # the package list is split on purpose
        apt_install $apt
    elif [ -n "$brew" ] && command -v brew >/dev/null 2>&1; then
        [ "$brew" = "-" ] && return 0
        echo "missing: $what; installing $brew" >&2
        # shellcheck disable=SC2086
        brew install $brew
    else
        local hint="Debian: apt-get install $apt"
        [ -n "$brew" ] && [ "$brew" != "-" ] && hint+=", Homebrew: brew install $brew"
        echo "Error: install $what ($hint) and try again" >&2
        return 69
    fi
}

# ensure_python_module MODULE PACKAGE: installs the PyPI package PACKAGE with pip when python3 cannot import MODULE.
ensure_python_module() {
    if python3 -c "import $1" 2>/dev/null; then
        return 0
    fi
    echo "$2 is missing; installing it" >&2
    python3 -m pip install --quiet "$2" || {
        echo "Error: cannot install $2; install it with 'python3 -m pip install $2'" >&2
        return 69
    }
}

has_libgcrypt() { pkg-config --exists libgcrypt || [ -f /usr/include/gcrypt.h ]; }
has_commands() {
    local name
    for name in "$@"; do
        command -v "$name" || return 1
    done
}

ensure_libgcrypt() {
    ensure_installed "libgcrypt's development files" "libgcrypt20-dev pkg-config" "libgcrypt pkg-config" has_libgcrypt
}

# hiredis (its command encoder and reply reader) is linked into aeschat for the relays of a cluster (serve --cluster).
ensure_hiredis() {
    ensure_installed "hiredis's development files" "libhiredis-dev pkg-config" "hiredis pkg-config" \
        pkg-config --exists hiredis
}

# redis-server for the tests of the cluster (each test starts its own on a free loopback port, persistence off, and
# ends it by PID). Debian's package starts a system service on port 6379 where it can: it is stopped and disabled at
# once, since nothing here uses it.
ensure_redis_server() {
    has_commands redis-server >/dev/null && return 0
    ensure_installed redis-server redis-server redis has_commands redis-server || return
    if command -v apt-get >/dev/null 2>&1; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo service redis-server stop >/dev/null 2>&1 || true
        $sudo systemctl disable redis-server >/dev/null 2>&1 || true
    fi
}

ensure_pytest() { ensure_python_module pytest pytest; }

# tmux drives the interactive terminal in the end-to-end tests (Tests/e2e/test_terminal.py); those
# tests fail rather than skip without it.
ensure_tmux() { ensure_installed tmux tmux tmux has_commands tmux; }

# The IRC servers that scripts/bench-irc measures aeschat's relay against (not needed to build or test).
ensure_irc_servers() { ensure_installed "inspircd and ngircd" "inspircd ngircd" "" has_commands inspircd ngircd; }

# dpkg-dev gives scripts/package dpkg-shlibdeps (dpkg-deb itself is part of dpkg).
ensure_dpkg_dev() { ensure_installed "dpkg-shlibdeps and dpkg-deb" dpkg-dev "" has_commands dpkg-shlibdeps dpkg-deb; }

# man-db gives the package test 'man -l', to read the unpacked man page.
ensure_man() { ensure_installed man man-db - has_commands man; }
