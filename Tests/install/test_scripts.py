"""scripts/aeschat builds only when the sources changed, and a call from a terminal does not recompile what a call
from a pipe built, or the other way round (issue 14, item 20)."""

import os
import pty
import select
import subprocess
import time

from conftest import ROOT, STAMP, version

SCRIPT = str(ROOT / "scripts" / "aeschat")


def on_terminal(arguments, environment):
    """Runs scripts/aeschat with a pseudo-terminal as standard input, output and error; returns (code, output)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen([SCRIPT, *arguments], stdin=terminal, stdout=terminal, stderr=terminal,
                               env=environment, close_fds=True)
    os.close(terminal)
    output = b""
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: every copy of the terminal side is closed
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=60), output.decode("utf-8", "replace")


def piped(arguments, environment):
    return subprocess.run([SCRIPT, *arguments], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=1800, env=environment)


def age_the_stamp():
    """Makes every source look newer than the last build, as an edit would, without changing any."""
    os.utime(STAMP, (1_000_000, 1_000_000))  # 1970


def test_no_build_at_all_while_the_sources_are_unchanged_on_a_terminal_or_not(release_binary, tmp_path):
    log = tmp_path / "build.log"
    environment = dict(os.environ, AESCHAT_BUILD_LOG=str(log))
    built = release_binary.stat().st_mtime_ns
    stamped = STAMP.stat().st_mtime_ns
    code, output = on_terminal(["--version"], environment)
    assert code == 0
    assert output.replace("\r\n", "\n") == f"aeschat {version()}\n"
    result = piped(["--version"], environment)
    assert (result.returncode, result.stdout, result.stderr) == (0, f"aeschat {version()}\n", "")
    code, output = on_terminal(["--version"], environment)
    assert (code, output.replace("\r\n", "\n")) == (0, f"aeschat {version()}\n")
    # swift build never ran (it would have written its log), and nothing was linked or stamped again.
    assert not log.exists()
    assert release_binary.stat().st_mtime_ns == built
    assert STAMP.stat().st_mtime_ns == stamped


def test_a_source_change_runs_swift_build_quietly_and_the_terminal_does_not_make_it_recompile(release_binary,
                                                                                             tmp_path):
    built = release_binary.stat().st_mtime_ns
    # From a terminal: swift build runs (the sources look changed), into its log, and finds nothing to do. Before,
    # the terminal turned the compiler's colour flag on and everything built from a pipe was compiled again.
    log = tmp_path / "terminal.log"
    age_the_stamp()
    code, output = on_terminal(["--version"], dict(os.environ, AESCHAT_BUILD_LOG=str(log)))
    assert code == 0
    lines = output.replace("\r\n", "\n").splitlines()
    assert lines == [f"building aeschat (release, log in {log}) ...", f"aeschat {version()}"]
    assert "Compiling" not in log.read_text() and "Linking" not in log.read_text(), log.read_text()
    assert release_binary.stat().st_mtime_ns == built
    # And from a pipe after the terminal: the same.
    log = tmp_path / "pipe.log"
    age_the_stamp()
    result = piped(["--version"], dict(os.environ, AESCHAT_BUILD_LOG=str(log)))
    assert result.returncode == 0 and result.stdout == f"aeschat {version()}\n"
    assert result.stderr == f"building aeschat (release, log in {log}) ...\n"
    assert "Compiling" not in log.read_text() and "Linking" not in log.read_text(), log.read_text()
    assert release_binary.stat().st_mtime_ns == built
    # The stamp is fresh again: the next call builds nothing.
    log = tmp_path / "after.log"
    result = piped(["--version"], dict(os.environ, AESCHAT_BUILD_LOG=str(log)))
    assert result.returncode == 0 and result.stderr == ""
    assert not log.exists()


def test_a_failed_build_shows_its_log_and_exits_non_zero(release_binary, tmp_path):
    # A copy of the package whose sources do not compile: the script prints the compiler's errors and fails,
    # stamping nothing, so the next call tries again.
    copy = tmp_path / "tree"
    (copy / "scripts" / "lib").mkdir(parents=True)
    for name in ("aeschat", "lib/release.sh", "lib/dependencies.sh"):
        (copy / "scripts" / name).write_bytes((ROOT / "scripts" / name).read_bytes())
        (copy / "scripts" / name).chmod(0o755)
    (copy / "Sources" / "aeschat").mkdir(parents=True)
    (copy / "Sources" / "aeschat" / "main.swift").write_text("let x: Int = \"not a number\"\n")
    (copy / "Package.swift").write_text(
        "// swift-tools-version: 6.0\nimport PackageDescription\n"
        "let package = Package(name: \"broken\", products: [.executable(name: \"aeschat\", targets: [\"aeschat\"])],\n"
        "    targets: [.executableTarget(name: \"aeschat\")])\n")
    result = subprocess.run([str(copy / "scripts" / "aeschat"), "--version"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1
    assert "error:" in result.stderr and "Error: building aeschat failed" in result.stderr.splitlines()[-1]
    assert not (copy / ".build" / "aeschat-release.stamp").exists()
