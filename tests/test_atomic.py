"""The one atomic-write helper: a reader sees the old file or the new one, never half."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scenes import atomic


def test_a_writer_killed_mid_way_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "metrics.csv"
    target.write_text("old,whole\n")
    started = tmp_path / "started"
    writer = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from scenes import atomic
        with atomic.replacing({str(target)!r}) as fh:
            fh.write("new," * 100_000)
            fh.flush()
            Path({str(started)!r}).touch()
            time.sleep(60)
            fh.write("end\\n")
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", writer])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None, "the writer died before it started writing"
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_text() == "old,whole\n"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name not in ("metrics.csv", "started")]
    assert leftovers and all(n.startswith(".metrics.csv.") for n in leftovers), leftovers


def test_an_error_inside_the_block_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "split.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic.replacing(target) as fh:
        fh.write("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["split.csv"]


def test_new_files_get_the_umask_permissions_not_mkstemps(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_bytes(tmp_path / "model.json", b"{}")
    finally:
        os.umask(old)
    assert (tmp_path / "model.json").stat().st_mode & 0o777 == 0o644


def test_two_writers_never_share_a_temporary_name(tmp_path):
    target = tmp_path / "a.bin"
    with atomic.replacing_path(target) as first, atomic.replacing_path(target) as second:
        assert first != second
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert target.read_bytes() == b"1"  # the last to finish wins, whole


def test_a_folder_is_published_whole(tmp_path):
    target = tmp_path / "openvino"
    target.mkdir()
    (target / "model.xml").write_text("old xml")
    (target / "model.bin").write_text("old bin")
    with pytest.raises(RuntimeError), atomic.replacing_folder(target) as build:
        (build / "model.xml").write_text("new xml")
        raise RuntimeError("export failed before the .bin")
    assert (target / "model.xml").read_text() == "old xml"
    with atomic.replacing_folder(target) as build:
        (build / "model.xml").write_text("new xml")
        (build / "model.bin").write_text("new bin")
        assert (target / "model.xml").read_text() == "old xml"  # not yet published
    assert sorted(p.name for p in target.iterdir()) == ["model.bin", "model.xml"]
    assert (target / "model.bin").read_text() == "new bin"
    assert [p.name for p in tmp_path.iterdir()] == ["openvino"]


def test_only_whole_file_modes_are_accepted(tmp_path):
    with pytest.raises(ValueError, match="whole file"), atomic.replacing(tmp_path / "x", "a"):
        pass
    assert not list(Path(tmp_path).iterdir())


def test_a_file_written_elsewhere_is_moved_into_place_whole(tmp_path):
    staged = tmp_path / "build" / "model.bin"
    staged.parent.mkdir()
    staged.write_bytes(b"new weights")
    target = tmp_path / "model.bin"
    target.write_bytes(b"old weights")
    atomic.move_into_place(staged, target)
    assert target.read_bytes() == b"new weights" and not staged.exists()
