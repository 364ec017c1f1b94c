"""A run folder belongs to one run: a second job fails at once, a fresh run never mixes with an
older one, and kills during checkpoint writes leave nothing stale behind."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from torchreid_pgflkd.cli import train as train_cli
from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.engine import run_folder
from torchreid_pgflkd.utils import locking
from torchreid_pgflkd.utils.io import stale_temp_files

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"
needs_flock = pytest.mark.skipif(locking.fcntl is None, reason="needs POSIX flock")


def _train_args(*words: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    return parser.parse_args(["--no-progress", "--config", str(CONFIG), *words])


def _earlier_run(folder: Path) -> list[str]:
    """A folder holding an older run: last.pth and two snapshots, as a run leaves them."""
    model = nn.Linear(3, 2)
    for epoch in (49, 50):
        ckpt_io.save_run_checkpoint(folder, model=model, epoch=epoch, snapshot_freq=1)
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


@needs_flock
def test_runs_a_fresh_run_refuses_a_folder_holding_another_runs_checkpoints(
    tiny_opts: list[str], tmp_path: Path
) -> None:
    """Before: the new run overwrote last.pth, and keep_last pruning (by epoch number) then
    deleted the new run's checkpoint_epoch000.pth and kept the old run's 49 and 50."""
    folder = tmp_path / "run"
    before = _earlier_run(folder)
    with pytest.raises(FileExistsError, match=r"--resume.*--overwrite"):
        train_cli.run(_train_args(*tiny_opts))
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == before

    # The library's run() refuses too when told not to overwrite, before training anything.
    cfg = build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    engine = build.build_engine(cfg, build.build_datamanager(cfg), progress=False)
    with pytest.raises(FileExistsError, match="checkpoint_epoch050.pth"):
        engine.run(save_dir=folder, max_epoch=1, overwrite=False)
    assert engine.global_step == 0


def test_runs_overwrite_removes_the_old_checkpoints_first_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "run"
    _earlier_run(folder)
    with caplog.at_level("WARNING"):
        run_folder.start_run_folder(folder, overwrite=True)
    assert ckpt_io.checkpoint_files(folder) == []
    for name in ("last.pth", "checkpoint_epoch049.pth", "checkpoint_epoch050.pth"):
        assert f"removed {folder / name}" in caplog.text
    with pytest.raises(ValueError, match="--overwrite starts the run again"):
        train_cli.run(_train_args("--resume", "--overwrite"))


def _train_cmd(opts: list[str]) -> list[str]:
    return [sys.executable, "-m", "torchreid_pgflkd.cli.main", "train", "--no-progress",
            "--config", str(CONFIG), *opts]  # fmt: skip


@needs_flock
def test_runs_a_second_training_job_in_the_same_folder_fails_at_once(
    tiny_opts: list[str], tmp_path: Path
) -> None:
    """Before: both jobs trained into one folder and exited 0, leaving mixed files."""
    env = {**os.environ, "TORCHREID_PGFLKD_CACHE": str(tmp_path / "cache")}
    build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    folder = tmp_path / "run"
    first = subprocess.Popen(
        _train_cmd([*tiny_opts, "train.max_epoch", "500"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        lock = folder / run_folder.LOCK_NAME
        deadline = time.time() + 300
        while time.time() < deadline and first.poll() is None:
            locked = lock.is_file() and lock.read_text().strip() == str(first.pid)
            if locked and (folder / "config.yaml").is_file():
                break
            time.sleep(0.1)
        assert first.poll() is None, first.stderr.read().decode()[-2000:]
        config_before = (folder / "config.yaml").read_bytes()

        start = time.monotonic()
        second = subprocess.run(
            _train_cmd([*tiny_opts, "train.lr", "0.01"]), env=env, capture_output=True, text=True
        )
        assert second.returncode != 0
        assert first.poll() is None, "the second job waited for the first to end"
        message = " ".join(second.stderr.split())
        assert f"run folder {folder} is in use" in message and f"pid {first.pid}" in message
        assert "saved checkpoint" not in second.stderr
        assert (folder / "config.yaml").read_bytes() == config_before
        assert time.monotonic() - start < 120
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        first.stderr.close()


def _write_forever(folder: str, epoch: int) -> None:
    """Child process: save checkpoints back to back, as a run does after each epoch."""
    torch.manual_seed(epoch)
    model = nn.Sequential(nn.Linear(1024, 1024), nn.Linear(1024, 1024))  # 8 MB of weights
    while True:
        epoch += 1
        ckpt_io.save_run_checkpoint(folder, model=model, epoch=epoch, keep_last=2, snapshot_freq=1)


@needs_flock
def test_runs_kill_9_during_checkpoint_writes_leaves_nothing_stale(tmp_path: Path) -> None:
    """Kill a writer mid-write again and again; each next start removes the temporary files
    and finds a last.pth that loads and is the newest checkpoint."""
    folder = tmp_path / "run"
    folder.mkdir()
    rng = random.Random(0)
    context = multiprocessing.get_context("fork")
    done, kills_mid_write = 0, 0
    for _ in range(12):
        with run_folder.run_folder_lock(folder):  # the next start
            if done:
                last = run_folder.resume_checkpoint(folder)
                assert stale_temp_files(folder) == []
                done = ckpt_io.finished_epochs(ckpt_io.load_checkpoint(last))
                snapshots = ckpt_io.snapshot_files(folder)
                newest = ckpt_io.load_checkpoint(snapshots[-1]) if snapshots else {"epoch": 0}
                assert done >= newest["epoch"]
        writer = context.Process(target=_write_forever, args=(str(folder), done), daemon=True)
        writer.start()
        deadline = time.time() + 60
        while not stale_temp_files(folder) and time.time() < deadline:
            pass  # wait for a write in progress
        while not (folder / "last.pth").is_file() and time.time() < deadline:
            time.sleep(0.001)
        time.sleep(rng.uniform(0, 0.05))
        kills_mid_write += bool(stale_temp_files(folder))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        done = max(done, 1)
    assert kills_mid_write >= 1, "no kill landed mid-write: the test proved nothing"
    with run_folder.run_folder_lock(folder):
        last = run_folder.resume_checkpoint(folder)
    assert stale_temp_files(folder) == []
    assert ckpt_io.finished_epochs(ckpt_io.load_checkpoint(last)) >= 1
