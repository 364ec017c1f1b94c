"""Checkpoints: atomic writes, weights_only round trips, RNG restore, readable errors."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from torch import nn

from torchreid_pgflkd.engine import checkpoint as ckpt_mod
from torchreid_pgflkd.engine.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    load_pretrained_weights,
    save_checkpoint,
    save_epoch_checkpoint,
)


class TinyReid(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.backbone = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8))
        self.classifier = nn.Linear(8, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(x))


def trained(num_classes: int = 10):
    torch.manual_seed(0)
    model = TinyReid(num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4], gamma=0.1)
    scaler = torch.amp.GradScaler("cpu")
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 6)).pow(2).mean().backward()
        opt.step()
        sched.step()
    return model, opt, sched, scaler


def draws() -> tuple:
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_round_trip_is_weights_only_and_restores_everything(tmp_path):
    model, opt, sched, scaler = trained()
    path = tmp_path / "ck.pth"
    metrics = {"rank1": np.float32(0.625), "mAP": np.float64(0.5), "cmc": np.arange(3) / 4}
    save_checkpoint(
        path, model=model, optimizer=opt, scheduler=sched, scaler=scaler, epoch=3, step=12,
        metrics=metrics, config={"model": {"name": "pgflkd"}, "lr": 3.5e-4},
        extra={"num_classes": 10},
    )  # fmt: skip
    expected = draws()  # what the RNGs give right after the save

    raw = torch.load(path, weights_only=True)  # no custom class or numpy value inside
    assert raw["metrics"] == {"rank1": 0.625, "mAP": 0.5, "cmc": [0.0, 0.25, 0.5]}
    assert type(raw["metrics"]["rank1"]) is float
    assert raw["meta"] == {"model_class": "TinyReid", "num_classes": 10}
    assert raw["format_version"] == ckpt_mod.FORMAT_VERSION

    torch.manual_seed(123)
    model2 = TinyReid()
    opt2 = torch.optim.Adam(model2.parameters(), lr=1.0)
    sched2 = torch.optim.lr_scheduler.MultiStepLR(opt2, milestones=[9], gamma=0.5)
    scaler2 = torch.amp.GradScaler("cpu", init_scale=8.0)
    draws()  # move every RNG on
    out = load_checkpoint(path, model=model2, optimizer=opt2, scheduler=sched2, scaler=scaler2)

    assert draws() == expected
    assert (out["epoch"], out["step"], out["config"]["lr"]) == (3, 12, 3.5e-4)
    for (k, a), b in zip(model.state_dict().items(), model2.state_dict().values()):
        assert torch.equal(a, b), k
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert all(torch.equal(s1[i]["exp_avg"], s2[i]["exp_avg"]) for i in s1)
    assert sched2.state_dict() == sched.state_dict()
    assert scaler2.get_scale() == scaler.get_scale()


def test_crash_during_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model, opt, _, _ = trained()
    path = tmp_path / "last.pth"
    save_checkpoint(path, model=model, optimizer=opt, epoch=1)
    before = sorted(os.listdir(tmp_path))

    real_save = torch.save

    def half_then_crash(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.seek(0)
        f.truncate(f.tell() // 2 or 10)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(OSError, match="simulated"):
        save_checkpoint(path, model=model, optimizer=opt, epoch=2)
    monkeypatch.undo()

    assert sorted(os.listdir(tmp_path)) == before  # no temp file left behind
    assert load_checkpoint(path, model=TinyReid())["epoch"] == 1


def test_wrong_num_classes_names_classifier_and_shapes(tmp_path):
    model, _, _, _ = trained(num_classes=10)
    path = save_checkpoint(tmp_path / "ck.pth", model=model, epoch=0)
    with pytest.raises(ValueError) as err:
        load_checkpoint(path, model=TinyReid(num_classes=12))
    msg = str(err.value)
    assert "classifier.weight" in msg and "(10, 8)" in msg and "(12, 8)" in msg
    assert str(path) in msg and "backbone" not in msg

    class Renamed(TinyReid):
        def __init__(self) -> None:
            super().__init__()
            self.head = self.classifier
            del self.classifier

    with pytest.raises(ValueError, match=r"missing keys.*head\.weight.*unexpected.*classifier"):
        load_checkpoint(path, model=Renamed())


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    missing = tmp_path / "nope" / "ck.pth"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_checkpoint(missing)

    model, _, _, _ = trained()
    good = save_checkpoint(tmp_path / "good.pth", model=model, epoch=0).read_bytes()
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good[: len(good) // 2])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint at all")
    for bad in (truncated, garbage):
        with pytest.raises(CheckpointError, match=str(bad)):
            load_checkpoint(bad, model=TinyReid())


class Gadget:
    """Stands for an arbitrary Python object that a weights_only load must refuse."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unsafe_object_is_refused_not_loaded_blindly(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": Gadget()}, path)
    with pytest.raises(CheckpointError, match="system"):
        load_checkpoint(path)


def test_torchreid_checkpoint_with_numpy_rank1_loads_pretrained(tmp_path):
    from torchreid_pgflkd import compat

    torchreid_model, opt, _, _ = trained(num_classes=10)
    wrapped = {"module." + k: v for k, v in torchreid_model.state_dict().items()}
    state = {"state_dict": wrapped, "epoch": 5, "rank1": np.float32(0.71), "optimizer": None}
    save = compat.submodule("utils.torchtools").save_checkpoint
    save(state, str(tmp_path))  # torchreid's own writer: model.pth.tar-5
    path = tmp_path / "model.pth.tar-5"
    with pytest.raises(Exception, match="scalar"):
        torch.load(path, weights_only=True)  # why the allow-list is needed

    model = TinyReid(num_classes=4)  # new dataset, new classifier
    report = load_pretrained_weights(model, path)
    assert report.mismatched == [("classifier.weight", (10, 8), (4, 8))]
    assert "classifier.weight" not in report.loaded and not report.missing
    assert set(report.loaded) == set(model.state_dict()) - {"classifier.weight"}
    for k in report.loaded:
        assert torch.equal(model.state_dict()[k], torchreid_model.state_dict()[k]), k


def test_pretrained_with_nothing_in_common_is_an_error(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="no weight of .*other.pth fits model TinyReid"):
        load_pretrained_weights(TinyReid(), path)


def test_data_parallel_wrapper_is_unwrapped_on_save(tmp_path):
    model, _, _, _ = trained()
    path = save_checkpoint(tmp_path / "dp.pth", model=nn.DataParallel(model), epoch=0)
    keys = torch.load(path, weights_only=True)["state_dict"].keys()
    assert keys == model.state_dict().keys()


def test_epoch_naming_latest_and_pruning(tmp_path):
    assert latest_checkpoint(tmp_path / "absent") is None
    assert latest_checkpoint(tmp_path) is None
    model, opt, _, _ = trained()
    for epoch in range(1, 5):
        save_epoch_checkpoint(tmp_path, model=model, optimizer=opt, epoch=epoch, keep_last=2)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_epoch003.pth", "checkpoint_epoch004.pth", "last.pth"]
    assert load_checkpoint(latest_checkpoint(tmp_path))["epoch"] == 4

    # A crash after writing epoch 5 but before refreshing last.pth: resume from epoch 5.
    newer = save_checkpoint(tmp_path / "checkpoint_epoch005.pth", model=model, epoch=5)
    stale = tmp_path / "last.pth"
    os.utime(stale, ns=(newer.stat().st_mtime_ns - 10**9,) * 2)
    assert latest_checkpoint(tmp_path) == newer
