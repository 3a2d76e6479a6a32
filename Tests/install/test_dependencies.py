"""scripts/lib/dependencies.sh: each ensure_ function leaves what is there alone, installs what is missing with
apt-get or Homebrew, whichever the machine has, and without either says what to install (exit 69). Run against fake
apt-get and brew commands that only record their arguments, on a PATH that holds nothing else."""

import os
import subprocess

import pytest

from conftest import ROOT

LIBRARY = ROOT / "scripts" / "lib" / "dependencies.sh"


@pytest.fixture
def machine(tmp_path):
    """Runs a line of bash with dependencies.sh sourced, on a PATH of only `id`, `sudo` and the fake installers named
    in `installers`; returns (exit status, standard error, the installers' recorded calls)."""
    calls = tmp_path / "calls"

    def run(line, installers=("apt-get",)):
        bin_folder = tmp_path / "bin"
        bin_folder.mkdir(exist_ok=True)
        for stale in bin_folder.iterdir():
            stale.unlink()
        os.symlink("/usr/bin/id", bin_folder / "id")
        (bin_folder / "sudo").write_text('#!/bin/bash\nexec "$@"\n')
        for name in installers:
            (bin_folder / name).write_text(f'#!/bin/bash\necho "{name} $*" >>"{calls}"\n')
        for script in bin_folder.iterdir():
            if script.name != "id":
                script.chmod(0o755)
        calls.write_text("")
        result = subprocess.run(["/bin/bash", "-c", f"set -euo pipefail; source '{LIBRARY}'; {line}"],
                                env={"PATH": str(bin_folder)}, capture_output=True, text=True, timeout=60)
        return result.returncode, result.stderr, calls.read_text().splitlines()

    return run


def test_what_is_there_is_left_alone(machine):
    assert machine("ensure_installed foo 'foo-dev pkg-config' foo true") == (0, "", [])


def test_what_is_missing_comes_from_apt_get_where_there_is_apt_get(machine):
    status, stderr, calls = machine("ensure_installed foo 'foo-dev pkg-config' foo false", ("apt-get", "brew"))
    assert (status, stderr) == (0, "missing: foo; installing foo-dev pkg-config\n")
    assert calls == ["apt-get update -qq", "apt-get install -y -qq foo-dev pkg-config"]


def test_what_is_missing_comes_from_homebrew_where_there_is_only_brew(machine):
    status, stderr, calls = machine("ensure_installed foo 'foo-dev pkg-config' 'foo pkg-config' false", ("brew",))
    assert (status, stderr, calls) == (0, "missing: foo; installing foo pkg-config\n", ["brew install foo pkg-config"])
    # "-": macOS has it already.
    assert machine("ensure_installed man-db man-db - false", ("brew",)) == (0, "", [])


def test_without_an_installer_it_says_what_to_install_and_exits_69(machine):
    status, stderr, calls = machine("ensure_installed foo foo-dev foo false", ())
    assert (status, calls) == (69, [])
    assert stderr == "Error: install foo (Debian: apt-get install foo-dev, Homebrew: brew install foo) and try again\n"
    # Nothing on Homebrew: the Debian package only, even where brew is.
    status, stderr, calls = machine("ensure_dpkg_dev", ("brew",))
    assert (status, calls) == (69, [])
    assert stderr == "Error: install dpkg-shlibdeps and dpkg-deb (Debian: apt-get install dpkg-dev) and try again\n"


def test_each_ensure_function_asks_apt_get_for_its_packages(machine):
    # (ensure_libgcrypt is left out: /usr/include/gcrypt.h, which it also accepts, is outside any PATH.)
    expected = {
        "ensure_hiredis": "libhiredis-dev pkg-config",
        "ensure_redis_server": "redis-server",
        "ensure_tmux": "tmux",
        "ensure_irc_servers": "inspircd ngircd",
        "ensure_dpkg_dev": "dpkg-dev",
        "ensure_man": "man-db",
    }
    for function, packages in expected.items():
        status, _, calls = machine(function)
        assert (status, calls) == (0, ["apt-get update -qq", f"apt-get install -y -qq {packages}"]), function
