"""A file on a network filesystem (NFS, SMB, Ceph, ...) read by Dask workers on other hosts:
each host numbers the mount's device its own way, so (st_dev, st_ino) taken where the frames
were read never matched where the payloads were read again, and the file read as "replaced".
There the identity is the inode number alone; on a local filesystem the device still counts.
Another host is played here by a stat that shifts st_dev."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from fastcap.read import guard
from fastcap.run import scanner, split
from fastcap.run.workers import SerialExecutor

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NFS, EXT4 = 0x6969, 0xEF53  # statfs f_type (linux/magic.h)


def other_host(monkeypatch) -> None:
    """stat and fstat as another host sees the file: the same inode, another device."""
    def shifted(real):
        def stat(*a, **kw):
            st = list(real(*a, **kw))
            st[2] += 1  # st_dev
            return os.stat_result(st)
        return stat
    monkeypatch.setattr(guard.os, "stat", shifted(os.stat))
    monkeypatch.setattr(guard.os, "fstat", shifted(os.fstat))


@pytest.mark.parametrize(("fs", "same"), [(NFS, True), (EXT4, False)])
def test_same_file_ignores_the_device_on_a_network_filesystem(tmp_path, monkeypatch, fs, same):
    path = tmp_path / "a.pcapng"
    shutil.copy(EXAMPLES / "all-scenarios.pcapng", path)
    monkeypatch.setattr(guard, "fs_type", lambda target: fs)
    with open(path, "rb") as f:
        here = guard.file_identity(os.fstat(f.fileno()), f.fileno())
    assert guard.same_file(str(path), here)
    other_host(monkeypatch)
    assert guard.same_file(str(path), here) is same
    with open(path, "rb") as f:
        assert guard.same_file(str(path), here, f.fileno()) is same
    # another file under the name is another inode, on a network filesystem too
    os.replace(shutil.copy(path, tmp_path / "b.pcapng"), path)
    assert not guard.same_file(str(path), here)


@pytest.mark.parametrize("backend", ["native", "python"])
def test_payloads_read_again_on_another_host_of_a_network_filesystem(tmp_path, monkeypatch,
                                                                     backend):
    """The executor path (a Dask cluster's) reads the file's frames, then its payloads on
    another host: on NFS the same sessions as one process, with no warning."""
    path = tmp_path / "a.pcapng"
    shutil.copy(EXAMPLES / "all-scenarios.pcapng", path)
    monkeypatch.setattr(guard, "fs_type", lambda target: NFS)
    real_two = split._phase_two

    def phase_two(*a, **kw):
        other_host(monkeypatch)
        return real_two(*a, **kw)

    (want,) = scanner.scan_files([path], jobs=1, backend=backend)
    monkeypatch.setattr(split, "_phase_two", phase_two)
    with SerialExecutor() as ex:
        (got,) = scanner.scan_files([path], executor=ex, jobs=2, parts=4, backend=backend)
    assert got.summary.warnings == () and got.error is None
    assert [[v.code for v in s.verdicts] for s in got.sessions] == \
        [[v.code for v in s.verdicts] for s in want.sessions] and len(want.sessions) > 0


@pytest.mark.skipif(not shutil.which("stat") or not os.uname().sysname == "Linux",
                    reason="GNU stat on Linux")
def test_fs_type_is_the_type_stat_f_tells(tmp_path):
    import subprocess
    want = int(subprocess.run(["stat", "-f", "-c", "%t", str(tmp_path)], capture_output=True,
                              text=True, check=True).stdout, 16)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert guard.fs_type(str(tmp_path)) == guard.fs_type(fd) == want
    finally:
        os.close(fd)
