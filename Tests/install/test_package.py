"""scripts/package makes a Debian package that unpacks into a working aeschat, its man page and its completions;
scripts/install puts the same files under a prefix (issue 14, item 21)."""

import gzip
import os
import subprocess

from conftest import ROOT, version

COMPLETIONS = {
    "bash": "scripts/completions/aeschat.bash",
    "zsh": "scripts/completions/_aeschat",
    "fish": "scripts/completions/aeschat.fish",
}


def read_man_page(path):
    environment = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LANG="C.UTF-8")
    result = subprocess.run(["man", "-l", str(path)], capture_output=True, text=True, timeout=60, env=environment)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def test_the_debian_package_unpacks_into_a_working_aeschat(release_binary, tmp_path):
    result = subprocess.run([str(ROOT / "scripts" / "package"), str(tmp_path / "out")], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    architecture = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    deb = tmp_path / "out" / f"aeschat_{version()}_{architecture}.deb"
    assert result.stdout == f"{deb}\n"

    fields = {}
    for field in ("Package", "Version", "Architecture", "Maintainer", "Depends", "Section", "Description",
                  "Installed-Size"):
        value = subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True, timeout=60)
        assert value.returncode == 0, value.stderr
        fields[field] = value.stdout.strip()
    assert fields["Package"] == "aeschat"
    assert fields["Version"] == version()
    assert fields["Architecture"] == architecture
    assert fields["Maintainer"] and fields["Section"] == "net"
    assert fields["Description"].startswith("end-to-end encrypted command-line group chat")
    depends = [entry.strip().split(" ")[0] for entry in fields["Depends"].split(",")]
    assert "libgcrypt20" in depends and "libc6" in depends
    assert any(name.startswith("libhiredis") for name in depends), depends
    # The README says what the package depends on: every package it lists, by name.
    readme = (ROOT / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in depends), (depends, "README.md, 'build a Debian package'")
    # The Swift runtime is inside the binary: nothing depends on a Swift package.
    assert not any("swift" in name for name in depends)
    assert int(fields["Installed-Size"]) > 0

    root = tmp_path / "unpacked"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True, timeout=300)
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    assert all(line.split()[1] == "root/root" for line in listing.splitlines())
    binary = root / "usr" / "bin" / "aeschat"
    assert os.stat(binary).st_mode & 0o777 == 0o755
    ran = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert (ran.returncode, ran.stdout) == (0, f"aeschat {version()}\n")
    # It runs without the Swift toolchain's libraries: none of them is linked dynamically.
    needed = subprocess.run(["objdump", "-p", str(binary)], capture_output=True, text=True, check=True).stdout
    assert "libswiftCore" not in needed and "libFoundation" not in needed

    page = root / "usr" / "share" / "man" / "man1" / "aeschat.1.gz"
    assert gzip.decompress(page.read_bytes()) == (ROOT / "docs" / "aeschat.1").read_bytes()
    text = read_man_page(page)
    assert "\nSYNOPSIS\n" in text and "aeschat join" in text and f"aeschat {version()}" in text

    installed = {
        "bash": root / "usr/share/bash-completion/completions/aeschat",
        "zsh": root / "usr/share/zsh/vendor-completions/_aeschat",
        "fish": root / "usr/share/fish/vendor_completions.d/aeschat.fish",
    }
    for shell, path in installed.items():
        assert path.read_bytes() == (ROOT / COMPLETIONS[shell]).read_bytes(), shell


def test_install_puts_the_binary_man_page_and_completions_under_the_prefix(release_binary, tmp_path):
    prefix = tmp_path / "prefix"
    result = subprocess.run([str(ROOT / "scripts" / "install"), str(prefix)], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"installed aeschat {version()} in {prefix}")
    ran = subprocess.run([str(prefix / "bin" / "aeschat"), "--version"], capture_output=True, text=True, timeout=60)
    assert ran.stdout == f"aeschat {version()}\n"
    assert (prefix / "share/man/man1/aeschat.1").read_bytes() == (ROOT / "docs" / "aeschat.1").read_bytes()
    assert "\nSYNOPSIS\n" in read_man_page(prefix / "share/man/man1/aeschat.1")
    for shell, path in {
        "bash": prefix / "share/bash-completion/completions/aeschat",
        "zsh": prefix / "share/zsh/site-functions/_aeschat",
        "fish": prefix / "share/fish/vendor_completions.d/aeschat.fish",
    }.items():
        assert path.read_bytes() == (ROOT / COMPLETIONS[shell]).read_bytes(), shell
    # DESTDIR stages the same layout under another root.
    staged = subprocess.run([str(ROOT / "scripts" / "install"), "/usr"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, DESTDIR=str(tmp_path / "stage")))
    assert staged.returncode == 0, staged.stderr
    assert (tmp_path / "stage" / "usr" / "bin" / "aeschat").exists()


def test_install_and_package_refuse_bad_arguments_with_64(tmp_path):
    for script in ("install", "package"):
        for arguments in (["--prefix", "x"], ["a", "b"]):
            result = subprocess.run([str(ROOT / "scripts" / script), *arguments], capture_output=True, text=True,
                                    timeout=60)
            assert result.returncode == 64, (script, arguments, result.stderr)
            assert result.stderr.startswith("usage: scripts/" + script)
