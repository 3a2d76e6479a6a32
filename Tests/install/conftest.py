"""Shared fixtures for the tests of the install scripts (scripts/aeschat, scripts/install, scripts/package), the man
page and the shell completions. scripts/test runs them after the end-to-end tests; they need the release build,
which the first test to ask for it makes once (through scripts/lib/release.sh, as scripts/aeschat would) and the
others share."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RELEASE_BIN = ROOT / ".build" / "release" / "aeschat"
STAMP = ROOT / ".build" / "aeschat-release.stamp"


def version():
    for line in (ROOT / "Sources" / "AESChatCLI" / "Basics.swift").read_text().splitlines():
        if line.startswith("public let aeschatVersion = "):
            return line.split('"')[1]
    raise AssertionError("no aeschatVersion in Basics.swift")


@pytest.fixture(scope="session")
def release_binary():
    """The release binary, built by scripts/aeschat if its sources changed (a cold build takes minutes)."""
    result = subprocess.run([str(ROOT / "scripts" / "aeschat"), "--version"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"aeschat {version()}\n"
    return RELEASE_BIN
