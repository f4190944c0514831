"""README's examples, run as a reader copies them: each `$ fastcap ...` block's command is run
from the checkout and its output held to the lines shown (a line `...` stands for any number
of lines, and `...` or `…` inside a line for any text), and the Python API snippets run as
written, so README cannot drift from what the program prints."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap.cli import main
from fastcap_synth.evidence_pairs import story_sessions, write_paired_capture

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EVIDENCE = ROOT / "tests" / "data" / "evidence"


def shown(command_start: str) -> tuple[list[str], list[str]]:
    """The command (joined across `\\` continuations) and the output README shows for the
    `$ ` block whose command starts with `command_start`."""
    for block in re.findall(r"```\n(\$ .*?)```", README, re.S):
        text = block.replace("\\\n", " ")
        command, *lines = text.splitlines()
        if command[2:].startswith(command_start):
            return shlex.split(command[2:]), lines
    raise AssertionError(f"README shows no `$ {command_start}` block")


def _pattern(line: str) -> re.Pattern:
    parts = re.split(r"\.\.\.|…", line)
    return re.compile(".*".join(re.escape(p) for p in parts), re.S)


def follows(shown_lines: list[str], printed: list[str]) -> bool:
    """Whether the printed lines are the shown ones, a shown `...` line skipping any number."""
    i = 0
    for k, line in enumerate(shown_lines):
        if line.strip() == "...":
            rest = shown_lines[k + 1:]
            return any(follows(rest, printed[j:]) for j in range(i, len(printed) + 1))
        if i >= len(printed) or not _pattern(line).fullmatch(printed[i]):
            return False
        i += 1
    return i == len(printed)


def first_difference(shown_lines: list[str], printed: list[str]) -> str:
    """The first shown line (not `...`) that no printed line matches, for the message."""
    for line in shown_lines:
        if line.strip() != "..." and not any(_pattern(line).fullmatch(p) for p in printed):
            return line
    return "(the order, or lines README leaves out without `...`)"


def run(capsys, monkeypatch, cwd: Path, argv: list[str]) -> tuple[int, list[str]]:
    monkeypatch.chdir(cwd)
    assert argv[0] == "fastcap"
    code = main(argv[1:])
    got = capsys.readouterr()
    return code, (got.err + got.out).splitlines()


def test_quick_start_table_is_printed_exactly(capsys, monkeypatch):
    """The first output a reader sees: every line as README shows it, and exit code 1."""
    argv, lines = shown("fastcap scan --ca-file examples/test-root.pem examples/exchange")
    assert "..." not in "\n".join(lines)
    code, printed = run(capsys, monkeypatch, ROOT, argv)
    assert code == 1
    assert printed == lines


def test_follow_example_is_what_follow_prints(capsys, monkeypatch):
    """Wireshark's view of the example, message by message: nothing left out unmarked."""
    argv, lines = shown("fastcap follow examples/")
    code, printed = run(capsys, monkeypatch, ROOT, argv)
    assert code == 0
    assert follows(lines, printed), first_difference(lines, printed)


def test_untrusted_ca_example_is_what_scan_prints(capsys, monkeypatch):
    """A chain no path to a trusted root is built from, in fastcap's words and OpenSSL's."""
    argv, lines = shown("fastcap scan --ca-file examples/test-root.pem examples/all-scenarios")
    code, printed = run(capsys, monkeypatch, ROOT, argv)
    assert code == 1
    assert follows(lines, printed), first_difference(lines, printed)


def test_evidence_example_is_what_scan_prints(capsys, monkeypatch, tmp_path):
    """The logs' story: the fixture logs beside a capture of their three sessions (the one the
    evidence tests write, the log host's clock 2.5 s ahead)."""
    argv, lines = shown("fastcap scan capture.pcap ")
    work = tmp_path / "evidence"
    work.mkdir()
    for f in EVIDENCE.iterdir():
        (work / f.name).symlink_to(f)
    write_paired_capture(work / "capture.pcap", story_sessions(dt.timedelta(seconds=2.5)))
    code, printed = run(capsys, monkeypatch, work, argv)
    assert code == 1
    assert follows(lines, printed), first_difference(lines, printed)


def _keys(o: object) -> set[str]:
    if isinstance(o, dict):
        return set(o).union(*map(_keys, o.values()))
    if isinstance(o, list):
        return set().union(*map(_keys, o))
    return set()


def test_json_outline_names_only_fields_the_document_has(capsys, tmp_path):
    """Each field README's outline of `--format json` names is a field of a scan's document:
    the examples, one cut to start at the ClientHello (so `mid_session` is filled in) and a
    missing file (an `errors` entry).  `roles_turned` needs a TURN, made elsewhere."""
    section = README.split("\n### JSON output\n", 1)[1]
    outline = section.split("```\n", 1)[1].split("```", 1)[0]
    named = set(re.findall(r'(?<![:|] )"([a-z0-9_]+)"', outline))
    seed = (ROOT / "examples" / "exchange-online-no-client-cert.pcap").read_bytes()
    records, at = [], 24
    while at < len(seed):
        caplen = int.from_bytes(seed[at + 8:at + 12], "little")
        records.append(seed[at:at + 16 + caplen])
        at += 16 + caplen
    cut = tmp_path / "from-clienthello.pcap"
    cut.write_bytes(seed[:24] + b"".join(records[8:]))  # frame 9 is the ClientHello
    main(["scan", "--format", "json", str(ROOT / "examples" / "all-scenarios.pcapng"),
          str(ROOT / "examples" / "exchange-online-no-client-cert.pcap"), str(cut),
          str(tmp_path / "missing.pcap")])
    doc = json.loads(capsys.readouterr().out)
    assert doc["files"][2]["sessions"][0]["mid_session"] is not None
    assert sorted(named - _keys(doc) - {"roles_turned"}) == []


def test_every_pip_install_in_readme_installs_this_checkout():
    """`fastcap` on PyPI is another project (an Android screen grabber, 0.1.2 of 2019): a
    README command that installs by that name installs it, never this one."""
    commands = [c for block in re.findall(r"```sh\n(.*?)```", README, re.S)
                for line in block.splitlines()
                for c in line.split("#", 1)[0].split("&&") if "pip install" in c]
    assert commands
    for command in commands:
        words = shlex.split(command.split("pip install", 1)[1])
        wanted = [w for w in words if not w.startswith("-")]
        assert wanted and all(w == "." or w.startswith(".[") for w in wanted), command


def test_follows_reads_ellipses_as_readme_uses_them():
    assert follows(["a ...", "...", "c"], ["a b", "x", "y", "c"])
    assert follows(["a …, d"], ["a bc, d"])
    assert not follows(["a", "c"], ["a", "b", "c"])
    assert not follows(["a", "..."], ["b"])


PYTHON_API = README.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
# README's placeholder names, and the files of the checkout that stand in for them
STAND_INS = {
    "big.pcapng": ROOT / "examples" / "exchange-online-no-client-cert.pcap",
    "ring_00001.pcapng": ROOT / "examples" / "exchange-online-no-client-cert.pcap",
    "ring_00002.pcapng": ROOT / "examples" / "all-scenarios.pcapng",
    "capture.pcap": ROOT / "examples" / "exchange-online-no-client-cert.pcap",
    "SEND20260310-1.LOG": EVIDENCE / "SEND20260310-1.LOG",
    "inbound.json": EVIDENCE / "inbound-connector.json",
}


@pytest.mark.parametrize("n", range(len(re.findall(r"```python\n", PYTHON_API))))
def test_python_api_snippet_runs_as_written(n):
    """Each snippet on its own, in a fresh interpreter (one freezes the collector), with the
    checkout's files for the placeholder names."""
    code = re.findall(r"```python\n(.*?)```", PYTHON_API, re.S)[n]
    for name, path in STAND_INS.items():
        code = code.replace(f'"{name}"', repr(str(path)))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
