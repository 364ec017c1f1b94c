"""Resume never silently differs from what it reports: settings that cannot change raise, the
ones that may change apply, and ``last.pth`` is always the newest readable checkpoint."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from torchreid_pgflkd.cli import train as train_cli
from torchreid_pgflkd.config import build, load_config, resume_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io
from torchreid_pgflkd.engine import run_folder

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


def _train(*words: str) -> int:
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    return train_cli.run(parser.parse_args(["--no-progress", "--config", str(CONFIG), *words]))


def test_resume_with_a_changed_setting_names_it_and_mutable_ones_apply(
    tiny_opts: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: ``--resume ... train.lr 0.01`` kept the checkpoint's learning rate (the
    optimizer state) while config.yaml and new checkpoints recorded 0.01."""
    opts = [*tiny_opts, "train.max_epoch", "1", "train.snapshot_freq", "1"]
    assert _train(*opts) == 0
    folder = Path(opts[opts.index("train.save_dir") + 1])
    config_yaml = (folder / "config.yaml").read_text()

    with pytest.raises(ValueError) as info:
        _train("--resume", *opts, "train.lr", "0.01", "loss.margin", "0.5")
    message = str(info.value)
    assert "train.lr (checkpoint 0.001, now 0.01)" in message
    assert "loss.margin (checkpoint 0.3, now 0.5)" in message
    assert "another train.save_dir, or --overwrite" in message
    assert (folder / "config.yaml").read_text() == config_yaml

    # An empty last.pth (a disk that filled up) falls back to the newest readable snapshot;
    # "--resume train.max_epoch 2" resumes (it used to take train.max_epoch as the path).
    (folder / "last.pth").write_bytes(b"")
    with caplog.at_level("INFO"):
        assert _train("--resume", "train.max_epoch", "2", "test.metric", "cosine", *opts[:-4]) == 0
    assert "last.pth was unreadable (empty or corrupt): replaced by checkpoint_epoch001.pth" in (
        caplog.text
    )
    assert "train.max_epoch changes from 1 to 2" in caplog.text
    state = ckpt_io.load_checkpoint(folder / "last.pth")
    assert state["epoch"] == 2 and state["format_version"] == 2
    saved = yaml.safe_load(state["config"])
    assert saved["train"]["max_epoch"] == 2 and saved["test"]["metric"] == "cosine"
    assert yaml.safe_load((folder / "config.yaml").read_text())["train"]["max_epoch"] == 2


def test_resume_config_treats_keys_an_older_release_lacked_as_defaults(
    tiny_opts: list[str],
) -> None:
    cfg = load_config(CONFIG, tiny_opts)
    old = yaml.safe_load(cfg.dump())
    del old["train"]["snapshot_freq"], old["data"]["skip_bad_images"]
    assert resume_config(cfg, yaml.safe_dump(old), source="old.pth") is cfg
    changed = load_config(CONFIG, [*tiny_opts, "data.skip_bad_images", "True"])
    with pytest.raises(ValueError, match=r"data\.skip_bad_images \(checkpoint False, now True\)"):
        resume_config(changed, yaml.safe_dump(old), source="old.pth")


def test_resume_flags_take_no_value_but_the_old_pth_form_still_works(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    args = parser.parse_args(["--config", "c.yaml", "--resume", "train.max_epoch", "5"])
    assert args.resume is True and train_cli._overrides(args) == ["train.max_epoch", "5"]
    args = parser.parse_args(["--config", "c.yaml", "--resume", "run/last.pth", "a.b", "1"])
    assert args.resume_from == "run/last.pth" and train_cli._overrides(args) == ["a.b", "1"]
    args = parser.parse_args(["--resume-from", "x.ckpt", "--config", "c.yaml"])
    assert args.resume_from == "x.ckpt" and args.resume is False
    other = tmp_path / "model.pth.tar-5"
    other.write_bytes(b"")
    args = parser.parse_args(["--config", "c.yaml", "--resume", str(other)])
    with pytest.raises(ValueError, match=f"--resume-from {other}"):
        train_cli._overrides(args)
    args = parser.parse_args(["--config", "c.yaml", "train.lr", "0.1", "--resume"])
    with pytest.raises(ValueError, match="options go before the KEY VALUE overrides: --resume"):
        train_cli._overrides(args)


def _save(path: Path, epoch: int, mtime: int, *, version: int = 2) -> None:
    ckpt_io.save_checkpoint(path, model=nn.Linear(2, 2), epoch=epoch)
    if version == 1:  # rewrite as format 1 did: the 0-based index of the last finished epoch
        state = torch.load(path, weights_only=True)
        torch.save({**state, "format_version": 1, "epoch": epoch - 1}, path)
    os.utime(path, ns=(mtime, mtime))


def test_resume_refreshes_a_last_pth_older_than_the_newest_snapshot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a kill between writing checkpoint_epoch003.pth and copying it to last.pth left
    last.pth at epoch 2, and ``pgflkd test --weights last.pth`` evaluated the older model."""
    s = 10**9
    _save(tmp_path / "checkpoint_epoch001.pth", 2, 1 * s, version=1)
    _save(tmp_path / "last.pth", 2, 2 * s, version=1)
    _save(tmp_path / "checkpoint_epoch002.pth", 3, 3 * s, version=1)  # format-1 names: 0-based
    (tmp_path / ".last.pth.k3j2.tmp").write_bytes(b"half a checkpoint")
    with caplog.at_level("WARNING"):
        run_folder.start_run_folder(tmp_path, resume_from=tmp_path / "last.pth")
    assert ckpt_io.finished_epochs(ckpt_io.load_checkpoint(tmp_path / "last.pth")) == 3
    assert "older (2 epochs done): replaced by checkpoint_epoch002.pth" in caplog.text
    assert not (tmp_path / ".last.pth.k3j2.tmp").exists()


def test_resume_falls_back_past_unreadable_files_and_says_when_it_cannot(
    tmp_path: Path,
) -> None:
    s = 10**9
    _save(tmp_path / "checkpoint_epoch004.pth", 4, 1 * s)
    (tmp_path / "checkpoint_epoch005.pth").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "last.pth").write_bytes(b"")
    assert run_folder.resume_checkpoint(tmp_path) == tmp_path / "last.pth"
    assert ckpt_io.load_checkpoint(tmp_path / "last.pth")["epoch"] == 4

    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "last.pth").write_bytes(b"")
    with pytest.raises(ckpt_io.CheckpointError, match=r"empty or corrupt.*--overwrite"):
        run_folder.resume_checkpoint(alone)
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        run_folder.resume_checkpoint(tmp_path / "empty")


def test_resume_of_a_prepared_config_checks_against_the_checkpoint(
    tiny_opts: list[str], tmp_path: Path
) -> None:
    """Fails before any data or model is built: a wrong setting costs nothing."""
    cfg = build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    folder = Path(cfg.train.save_dir)
    ckpt_io.save_checkpoint(folder / "last.pth", model=nn.Linear(2, 2), epoch=1, config=cfg.dump())
    with pytest.raises(ValueError, match=r"model\.num_parts \(checkpoint 6, now 4\)"):
        _train("--resume", *tiny_opts, "model.num_parts", "4")
