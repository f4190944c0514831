"""Scans on a Dask cluster (a LocalCluster on loopback) equal local scans."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastcap.run.scanner import ScanSummary, scan

from .gencap import generate

distributed = pytest.importorskip("distributed", reason="Dask is an optional extra: "
                                  "pip install 'fastcap[dask]'")
fd = pytest.importorskip("fastcap.run.distributed")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CA = str(EXAMPLES / "test-root.pem")


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as c:
        with distributed.Client(c) as client:
            yield c, client


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, Path]:
    return generate(tmp_path_factory.mktemp("gen"), size="3M", sessions=50, seed=3)


def _local(path) -> tuple[list[dict], dict]:
    run = scan(path, ca_file=CA)
    return [s.to_dict() for s in run], run.summary.to_dict()


def test_cluster_scan_equals_local_scan(cluster, generated, tmp_path):
    _, client = cluster
    gz = tmp_path / "g.pcap.gz"
    gz.write_bytes(gzip.compress(generated["pcap"].read_bytes(), 1))
    paths = [generated["pcap"], generated["pcapng"], EXAMPLES / "all-scenarios.pcapng", gz]
    got = fd.scan(paths, client, ca_file=CA, parts=7)
    assert [r.path for r in got] == [str(p) for p in paths]
    for r, p in zip(got, paths, strict=True):
        assert r.error is None
        assert ([s.to_dict() for s in r.sessions], r.summary.to_dict()) == _local(p)
    assert len(got[0].sessions) == 50


def test_a_path_workers_cannot_see_is_named(cluster, generated, tmp_path):
    _, client = cluster
    missing = tmp_path / "only-on-my-laptop.pcap"
    got = fd.scan([missing, generated["pcap"]], client, ca_file=CA)
    assert got[0].error.startswith(f"{missing}: not visible to Dask worker tcp://127.0.0.1:")
    assert "same path" in got[0].error and got[0].sessions == ()
    assert got[1].error is None and len(got[1].sessions) == 50
    assert fd.unseen_paths(client, [generated["pcap"], missing]) == {
        str(missing): fd.unseen_paths(client, [missing])[str(missing)]}


def test_cli_dask_option(cluster, generated):
    c, _ = cluster

    def run(*args):
        env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
        return subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "--ca-file", CA,
                               "--format", "json", *args, str(generated["pcapng"])],
                              capture_output=True, text=True, timeout=300, env=env)

    local, remote = run("-j", "1"), run("--dask", c.scheduler_address)
    assert remote.returncode == local.returncode == 1, remote.stderr
    assert json.loads(remote.stdout) == json.loads(local.stdout)
    bad = run("--dask", "tcp://127.0.0.1:9")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "fastcap: cannot reach the Dask scheduler at tcp://127.0.0.1:9: ")
    assert bad.stderr.count("\n") == 1


def test_cluster_links_resumed_sessions_across_files_as_a_local_scan(cluster, tmp_path):
    """One file scanned whole on a worker (gzip) still links to an earlier file's session."""
    from fastcap.run.scanner import scan_files

    from .resumecap import build

    _, client = cluster
    caps = build(tmp_path)
    gz = tmp_path / "resumptions.pcap.gz"
    gz.write_bytes(gzip.compress(caps.resumptions.read_bytes(), 1))
    paths = [caps.originals, gz]
    got = fd.scan(paths, client, ca_file=caps.ca, parts=3)
    local = scan_files(paths, ca_file=caps.ca)
    for r, want in zip(got, local, strict=True):
        assert r.error is None and want.error is None
        assert [s.to_dict() for s in r.sessions] == [s.to_dict() for s in want.sessions]
        assert r.summary.to_dict() == want.summary.to_dict()
    # the expired certificate; the empty one went to a Postfix peer that only asked (info)
    assert got[1].summary.with_problems == 1
    inherited = [v for v in got[1].sessions[1].verdicts if v.code == "no_client_cert"]
    assert inherited[0].message.startswith("inherited from session 2 ")


def test_a_server_that_is_no_scheduler_is_one_line_not_a_traceback(generated):
    """Dask reads the first bytes a server sends as a frame length: an SMTP banner asks it
    for exabytes, and numpy's MemoryError reached the user as a traceback."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"220 mail.example.com ESMTP Postfix\r\n" * 4)
                conn.recv(1)

    threading.Thread(target=answer, daemon=True).start()
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    r = subprocess.run([sys.executable, "-m", "fastcap.cli", "scan", "--dask",
                        f"tcp://127.0.0.1:{port}", str(generated["pcapng"])],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (f"fastcap: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: "
                        "what answered there does not speak Dask's protocol\n")


def test_standard_input_is_refused_before_a_cluster_is_asked(capsys):
    from fastcap import cli

    assert cli.main(["scan", "--dask", "tcp://127.0.0.1:9", "-"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == ("fastcap: -: standard input cannot be scanned on a Dask "
                                 "cluster (its workers read the files themselves): give a "
                                 "file they can see\n")


def test_a_cluster_lost_mid_run_ends_in_one_line_after_what_was_reported(generated,
                                                                         monkeypatch, capsys):
    """The cluster goes away after the first file: its sessions stand, then one line, exit
    2 (Dask's own log lines and tracebacks are not the user's business)."""
    import dask.distributed
    from distributed.client import FutureCancelledError

    from fastcap import cli

    path = str(generated["pcapng"])
    whole = fd.FileScan(path, list(scan(path, jobs=1)), ScanSummary(path))

    def scan_files(files, client, options):
        yield whole
        raise FutureCancelledError("reassemble_flows-1", reason="scheduler-connection-lost",
                                   msg="Client lost the connection.\nPlease re-run your work.")

    class Client:
        def __init__(self, address):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(dask.distributed, "Client", Client)
    monkeypatch.setattr(fd, "scan_files", scan_files)
    code = cli.main(["scan", "--format", "jsonl", "--dask", "tcp://cluster:8786", path, path])
    out, err = capsys.readouterr()
    assert code == 2
    assert len(out.splitlines()) == len(whole.sessions) > 0
    assert err.startswith("fastcap: lost the Dask cluster at tcp://cluster:8786: "
                          "FutureCancelledError: ") and err.count("\n") == 1
    assert "\\n" not in err and "re-run" not in err  # the first line of Dask's message only


def test_what_fastcaps_own_tasks_raise_is_not_a_lost_cluster():
    from distributed.comm.core import CommClosedError

    from fastcap.cli import _lost_cluster
    from fastcap.errors import FastcapError

    assert _lost_cluster(CommClosedError("closed")) and _lost_cluster(ConnectionResetError())
    assert not _lost_cluster(FastcapError("x")) and not _lost_cluster(ValueError("bug"))


def _ring_with_a_gzipped_member(tmp_path) -> tuple[list[str], list[str]]:
    """An `editcap -c` ring of a capture whose sessions span its files, and the same ring
    with its third member gzipped (as a rotation job leaves it)."""
    whole = generate(tmp_path, size="3M", sessions=60, seed=21)["pcap"]
    found = scan(whole)
    list(found)
    count = found.summary.frames
    subprocess.run(["editcap", "-c", str(count // 4 + 1), str(whole),
                    str(tmp_path / "ring.pcap")], check=True, capture_output=True)
    ring = sorted(map(str, tmp_path.glob("ring_*.pcap")))
    assert len(ring) == 4
    gz = ring[2] + ".gz"
    Path(gz).write_bytes(gzip.compress(Path(ring[2]).read_bytes(), 1))
    return ring, [*ring[:2], gz, ring[3]]


@pytest.mark.skipif(not shutil.which("editcap"), reason="editcap cuts the ring")
def test_a_gzipped_ring_member_on_a_cluster_is_joined_as_a_local_scan_joins_it(cluster,
                                                                               tmp_path,
                                                                               backend):
    """The cluster reads a ring whose third member is gzipped as `-j 1` reads it: one run,
    the sessions spanning the member reported once, where they began, with the summaries
    of the uncompressed ring."""
    from fastcap.run.scanner import scan_files

    _, client = cluster
    ring, with_gz = _ring_with_a_gzipped_member(tmp_path)

    def facts(results):
        return [([s.to_dict() for s in r.sessions], r.summary.to_dict()) for r in results]

    def named_plain(found):  # the gzipped member under its uncompressed name
        return json.loads(json.dumps(found).replace(with_gz[2], ring[2]))

    local = facts(scan_files(with_gz, ca_file=CA, jobs=1, backend=backend))
    assert named_plain(local) == named_plain(facts(scan_files(ring, ca_file=CA, jobs=1,
                                                              backend=backend)))
    assert any(s["continues_into"] == [with_gz[2]] for s in local[1][0])
    got = fd.scan(with_gz, client, ca_file=CA, parts=3, backend=backend)
    assert [r.error for r in got] == [None] * 4
    assert facts(got) == local


def test_a_ring_on_a_cluster_reads_on_for_the_reports_icmp_errors(cluster, tmp_path):
    """A two-file ring cut with `editcap -c`, both connections ending in the first file and
    an ICMP error quoting the second in the next: each file's summary from the cluster is
    `joined` and counts that error as a local scan's does, so the report of a `--dask`
    scan reads on into the second file for the frame lists, as the plain scan's does."""
    from fastcap import cli
    from fastcap.run.scanner import iter_scan_files

    from .test_frameruns import late_error

    _, client = cluster
    capture = tmp_path / "late.pcap"
    late_error(capture)
    last = max(s.last_frame for s in scan(capture))
    cut = last + 10
    late_error(capture, filler=cut + 5 - last)  # the error 5 frames into the second file
    subprocess.run(["editcap", "-c", str(cut), str(capture), str(tmp_path / "ring.pcap")],
                   check=True, capture_output=True)
    ring = sorted(map(str, tmp_path.glob("ring_*.pcap")))
    assert len(ring) == 2

    def facts(results):
        results = [(r.path, r.sessions, r.summary) for r in results]
        return ([(s.joined, s.icmp_about_selected, s.frames) for _p, _k, s in results],
                cli._later_in_run(results, 0))

    local = facts(iter_scan_files(ring))
    assert local == ([(False, 0, cut), (True, 1, 6)], [(ring[1], 6)])
    assert facts(fd.scan(ring, client, parts=2)) == local
