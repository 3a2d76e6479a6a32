"""The man page is what scripts/manpage makes of docs/CLI.md, and man reads it without a complaint; the bash
completion completes what it should. (That CLI.md, the man page and every completion name exactly the parser's
options is checked by the Swift test Tests/AESChatCLITests/DocumentationTests.swift.)"""

import os
import shutil
import subprocess

import pytest

from conftest import ROOT, version


def test_the_committed_man_page_is_what_cli_md_gives():
    result = subprocess.run([str(ROOT / "scripts" / "manpage"), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_manpage_check_fails_when_the_page_differs(tmp_path):
    # The check compares with the committed page: a copy of the script in a scratch tree with a changed CLI.md fails.
    for folder in ("scripts", "docs", "Sources/AESChatCLI"):
        (tmp_path / folder).mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "manpage", tmp_path / "scripts" / "manpage")
    shutil.copy(ROOT / "docs" / "aeschat.1", tmp_path / "docs" / "aeschat.1")
    shutil.copy(ROOT / "Sources" / "AESChatCLI" / "Basics.swift", tmp_path / "Sources" / "AESChatCLI" / "Basics.swift")
    text = (ROOT / "docs" / "CLI.md").read_text()
    (tmp_path / "docs" / "CLI.md").write_text(text.replace("Runs the relay that members connect to.", "Runs a relay."))
    result = subprocess.run(["python3", str(tmp_path / "scripts" / "manpage"), "--check"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert "run scripts/manpage" in result.stderr


def test_man_reads_the_page_without_warnings():
    environment = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LANG="C.UTF-8")
    result = subprocess.run(["man", "-l", str(ROOT / "docs" / "aeschat.1")], capture_output=True, text=True,
                            timeout=60, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    page = result.stdout
    for heading in ("NAME", "SYNOPSIS", "DESCRIPTION", "MODES", "JSON OUTPUT (--JSON)", "EXIT CODES"):
        assert f"\n{heading}\n" in page, heading
    assert f"aeschat {version()}" in page
    assert "--max-file-size <bytes>" in page


def complete(*words):
    """What the bash completion offers for the command line `words` (the last word is the one being typed)."""
    script = ROOT / "scripts" / "completions" / "aeschat.bash"
    quoted = " ".join("'" + word.replace("'", "'\\''") + "'" for word in words)
    program = (f"source {script}; COMP_WORDS=({quoted}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); _aeschat; "
               "printf '%s\\n' \"${COMPREPLY[@]}\"")
    result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line]


def test_bash_completion_offers_commands_then_each_modes_options(tmp_path):
    assert complete("aeschat", "") == ["serve", "join", "keygen", "selftest", "help", "--help", "--version"]
    assert complete("aeschat", "j") == ["join"]
    assert complete("aeschat", "serve", "--po") == ["--port"]
    assert complete("aeschat", "join", "--name", "x", "--max") == ["--max-file-size"]
    assert complete("aeschat", "keygen", "--") == ["--out", "--identity", "--help"]
    assert complete("aeschat", "help", "k") == ["keygen"]
    assert complete("aeschat", "selftest", "--") == ["--json", "--inbox", "--help"]
    # serve's options are not join's.
    assert complete("aeschat", "join", "--show") == []
    # A value is not completed as an option; a folder option completes folders.
    assert complete("aeschat", "join", "--port", "") == []
    (tmp_path / "inbox-here").mkdir()
    (tmp_path / "inbox-file").write_text("")
    assert complete("aeschat", "join", "--inbox", str(tmp_path / "inbox-")) == [str(tmp_path / "inbox-here")]


@pytest.mark.parametrize("shell, script", [("zsh", "_aeschat"), ("fish", "aeschat.fish")])
def test_zsh_and_fish_completions_parse(shell, script):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    result = subprocess.run([shell, "-n", str(ROOT / "scripts" / "completions" / script)], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_fish_completion_offers_each_modes_options():
    if shutil.which("fish") is None:
        pytest.skip("fish is not installed")
    script = ROOT / "scripts" / "completions" / "aeschat.fish"

    def offered(line):
        program = f"source {script}; complete -C '{line}'"
        result = subprocess.run(["fish", "-c", program], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return [entry.split("\t")[0] for entry in result.stdout.splitlines()]

    assert offered("aeschat j") == ["join"]
    assert offered("aeschat serve --po") == ["--port"]
    assert offered("aeschat join --max") == ["--max-file-size"]
    assert offered("aeschat join --show") == []
    assert sorted(offered("aeschat keygen --")) == ["--help", "--identity", "--out"]
