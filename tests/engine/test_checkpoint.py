"""Checkpoints: atomic writes, weights_only round trips, RNG restore, readable errors, the
epoch convention (torchreid's), snapshots and pruning."""

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
    finished_epochs,
    load_checkpoint,
    load_pretrained_weights,
    save_checkpoint,
    save_run_checkpoint,
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
    assert raw["meta"]["model_class"] == "TinyReid" and raw["meta"]["num_classes"] == 10
    assert raw["meta"]["model_name"] is None  # not a PGFL-KD model
    assert raw["format_version"] == ckpt_mod.FORMAT_VERSION == 2

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


def test_snapshots_every_n_epochs_and_pruning(tmp_path):
    model, opt, _, _ = trained()
    for epoch in range(1, 7):
        save_run_checkpoint(
            tmp_path, model=model, optimizer=opt, epoch=epoch, keep_last=2, snapshot_freq=2
        )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["checkpoint_epoch004.pth", "checkpoint_epoch006.pth", "last.pth"]
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 6

    for epoch in range(7, 9):  # the default: last.pth only, and keep_last=0 prunes them all
        save_run_checkpoint(tmp_path, model=model, epoch=epoch, keep_last=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


def test_epoch_counts_finished_epochs_as_torchreid_resumes_them(tmp_path):
    """torchreid's resume_from_checkpoint starts at checkpoint['epoch']: after 3 finished
    epochs that must be 3 (the next epoch's 0-based index); format 1 files stored 2."""
    from torchreid_pgflkd import compat

    model, opt, sched, _ = trained()
    path = save_run_checkpoint(tmp_path, model=model, optimizer=opt, scheduler=sched, epoch=3)
    resume = compat.submodule("utils.torchtools").resume_from_checkpoint
    assert resume(str(path), TinyReid(), torch.optim.Adam(TinyReid().parameters())) == 3
    state = load_checkpoint(path)
    assert finished_epochs(state) == 3
    old = {**state, "format_version": 1, "epoch": 2}  # what format 1 wrote after 3 epochs
    assert finished_epochs(old) == 3


def test_pgflkd_checkpoints_name_the_registered_model(tmp_path):
    from torchreid_pgflkd.models import MODEL_FACTORIES, build_pgflkd

    for backbone, name in (("resnet_mini", "pgflkd_resnet_mini"), ("resnet50", "pgflkd")):
        assert name in MODEL_FACTORIES
        model = nn.Module()
        model.backbone_name = backbone  # what PGFLKD records; no need to build a ResNet-50
        assert ckpt_mod.model_name(model) == name
    model = build_pgflkd(num_classes=3, backbone="resnet_mini", pretrained=False, num_parts=2)
    path = save_checkpoint(tmp_path / "m.pth", model=model, epoch=1)
    assert torch.load(path, weights_only=True)["meta"]["model_name"] == "pgflkd_resnet_mini"


def test_checkpoints_are_readable_by_group_and_others(tmp_path):
    umask = os.umask(0o022)
    try:
        model, _, _, _ = trained()
        save_run_checkpoint(tmp_path, model=model, epoch=2, snapshot_freq=1, keep_last=1)
    finally:
        os.umask(umask)
    for name in ("last.pth", "checkpoint_epoch002.pth"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
