"""The inter-process file lock: exclusive, named on timeout, released when its holder dies."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from torchreid_pgflkd.utils import locking
from torchreid_pgflkd.utils.locking import file_lock

pytestmark = pytest.mark.skipif(locking.fcntl is None, reason="needs POSIX flock")

# Loads locking.py by path: no package import (and no torch) in the child.
_HOLDER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("locking", sys.argv[1])
locking = importlib.util.module_from_spec(spec)
spec.loader.exec_module(locking)
with locking.file_lock(sys.argv[2]):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_holder_waits_and_a_timeout_names_the_lock(tmp_path: Path) -> None:
    lock = tmp_path / "sub" / "x.lock"
    with file_lock(lock):
        with pytest.raises(TimeoutError) as info:
            with file_lock(lock, timeout=0.2):
                pass
        assert str(lock) in str(info.value)
    with file_lock(lock, timeout=0.2):  # released on leaving the block
        pass


def test_a_killed_holder_does_not_block_the_next_process(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    cmd = [sys.executable, "-c", _HOLDER, locking.__file__, str(lock)]
    holder = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TimeoutError, match=f"pid {holder.pid}"):
            with file_lock(lock, timeout=0.2):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        start = time.monotonic()
        with file_lock(lock, timeout=5):
            assert time.monotonic() - start < 5
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.stdout.close()
