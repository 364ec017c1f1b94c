"""benchmarks/compare_baselines.py: model specs, flags, the warm-up schedule, the engine log,
the summary, and one torchreid model trained by torchreid's ImageSoftmaxEngine on tiny data."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch

from torchreid_pgflkd import compat
from torchreid_pgflkd.config.experiment import embedded_config
from torchreid_pgflkd.engine import build_scheduler
from torchreid_pgflkd.utils.io import write_json

SCRIPT = "compare_baselines"  # imported by the bench_script fixture (conftest.py)


@pytest.fixture(scope="module")
def cb(bench_script: ModuleType) -> ModuleType:
    return bench_script


def test_model_specs(cb: ModuleType) -> None:
    osnet = cb.parse_model("osnet_x0_25")
    assert (osnet.key, osnet.torchreid_name, osnet.engine) == (
        "osnet_x0_25",
        "osnet_x0_25",
        "softmax",
    )
    assert osnet.label == "torchreid osnet_x0_25 + ImageSoftmaxEngine"
    triplet = cb.parse_model("resnet50:triplet")
    assert (triplet.torchreid_name, triplet.engine, triplet.folder) == (
        "resnet50", "triplet", "resnet50-triplet",
    )  # fmt: skip
    ours = cb.parse_model("baseline")
    assert ours.engine is None and ours.label == "MB only (BNNeck baseline)"
    on_osnet = cb.parse_model("pgflkd@osnet_x0_25")
    assert (on_osnet.variant, on_osnet.backbone, on_osnet.engine) == ("pgflkd", "osnet_x0_25", None)
    assert on_osnet.folder == "osnet_x0_25/pgflkd"  # where train_variant writes its record
    assert on_osnet.label.endswith(", osnet_x0_25")
    with pytest.raises(ValueError, match="unknown backbone 'osnet_x9'"):
        cb.parse_model("pgflkd@osnet_x9")
    with pytest.raises(ValueError, match="'pgfl' is not a variant"):
        cb.parse_model("pgfl@osnet_x0_25")
    with pytest.raises(ValueError, match="one of ours"):
        cb.parse_model("pgflkd_resnet18")  # registered by us: torchreid's engines can't train it
    with pytest.raises(ValueError, match="neither a variant.*osnet_x0_25"):
        cb.parse_model("osnet_x9")
    with pytest.raises(ValueError, match=r"engine must be one of \['softmax', 'triplet'\]"):
        cb.parse_model("resnet50:arcface")


def test_flags_default_to_the_config_and_override_torchreids_rows_only(cb: ModuleType) -> None:
    parser = cb.build_parser()
    cfg = embedded_config(seed=0)
    recipe = cb.recipe_from(parser.parse_args([]), cfg)
    assert recipe == cb.Recipe(
        optim="adam", lr=cfg.train.lr, weight_decay=cfg.train.weight_decay, epochs=30,
        warmup_epochs=3, milestones=(20, 27), gamma=0.1, margin=0.3,
    )  # fmt: skip
    args = parser.parse_args(["--lr", "0.01", "--milestones", "5", "8", "--", "train.lr", "1"])
    assert args.opts == ["--", "train.lr", "1"]  # main() drops the "--"
    recipe = cb.recipe_from(args, cfg)
    assert (recipe.lr, recipe.milestones, recipe.epochs) == (0.01, (5, 8), 30)


def _lrs(scheduler: Any, epochs: int) -> list[float]:
    out = []
    for _ in range(epochs):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def test_warmup_chained_to_torchreids_scheduler_is_our_schedule(cb: ModuleType) -> None:
    def optimizer() -> torch.optim.Optimizer:
        return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)

    opt = optimizer()
    base = compat.submodule("optim").build_lr_scheduler(
        opt, lr_scheduler="multi_step", stepsize=[20, 27], gamma=0.1
    )
    ours = build_scheduler(optimizer(), warmup_epochs=3, milestones=[20, 27], gamma=0.1)
    got = _lrs(cb.with_warmup(opt, base, epochs=3, factor=0.1), 30)
    assert got == pytest.approx(_lrs(ours, 30), rel=1e-9)
    assert got[:4] == pytest.approx([1e-4, 4e-4, 7e-4, 1e-3])
    assert got[20] == pytest.approx(1e-4) and got[29] == pytest.approx(1e-5)
    assert cb.with_warmup(opt, base, epochs=0) is base


def test_engine_log_reads_summaries_per_epoch_and_the_final_test(cb: ModuleType) -> None:
    engine = SimpleNamespace(epoch=0, forward_backward=lambda d: {"loss": d, "acc": 50.0})
    engine.test = lambda **kw: 0.25
    log = cb.EngineLog.attach(engine)
    for epoch, value in ((0, 2.0), (0, 4.0), (1, 1.0)):
        engine.epoch = epoch
        assert engine.forward_backward(value) == {"loss": value, "acc": 50.0}
    assert log.epoch_means() == [{"loss": 3.0, "acc": 50.0}, {"loss": 1.0, "acc": 50.0}]
    assert engine.test(dist_metric="euclidean") == 0.25
    assert log.torchreid_rank1 == 0.25 and log.test_started is not None


def _fake_train_variant(cfg: Any, variant: str, output: Path, **kw: Any) -> tuple[dict, None]:
    """What ``train_variant`` records, without training (ours are tested elsewhere)."""
    target = {"rank1": 0.5, "rank5": 0.75, "mAP": 0.4, "mINP": 0.2, "cmc": [0.5, 0.75]}
    record = {
        "variant": variant, **target, "targets": {cfg.data.targets[0]: target},
        "final_losses": {"loss_mb_id": 1.5}, "train_and_eval_seconds": 2.0,
        "deployed": {"params": 1000, "gflops": 0.5}, "settings": {},
    }  # fmt: skip
    write_json(record, output / variant / "record.json")
    return record, None


def test_one_torchreid_model_one_epoch_beside_ours(
    cb: ModuleType, tiny_opts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cb, "train_variant", _fake_train_variant)
    work, out = tmp_path / "work", tmp_path / "report.json"
    argv = ["--models", "baseline", "osnet_x0_25", "--seeds", "0", "--epochs", "1",
            "--work-dir", str(work), "--output", str(out), "--", *tiny_opts]  # fmt: skip
    report = cb.main(argv)

    assert json.loads(out.read_text())["models"] == ["baseline", "osnet_x0_25"]
    assert report["failures"] == {}
    assert report["provenance"] == {
        "baseline": {"0": "trained by this run"}, "osnet_x0_25": {"0": "trained by this run"},
    }  # fmt: skip
    record = json.loads((work / "seed0" / "osnet_x0_25" / "record.json").read_text())
    assert record["engine"] == "ImageSoftmaxEngine" and record["torchreid_name"] == "osnet_x0_25"
    target = record["targets"]["synthetic_occluded"]
    assert all(0 <= target[m] <= 1 for m in ("rank1", "mAP", "mINP"))
    # torchreid's own test and our evaluator rank the same features (up to one query).
    check = record["torchreid_rank1_last_target"]
    assert check["rank1"] == pytest.approx(target["rank1"], abs=1 / target["num_queries"])
    assert len(record["id_loss_per_epoch"]) == 1 and record["epoch_losses"][0].keys() == {
        "loss", "acc",
    }  # fmt: skip
    assert record["id_loss_chance"] == pytest.approx(math.log(8))
    assert record["params"] > 0 and record["gflops"] > 0 and record["train_seconds"] > 0
    assert record["recipe"]["epochs"] == 1 and record["recipe"]["warmup_epochs"] == 1

    summary = report["summary"]
    assert set(summary) == {"baseline", "osnet_x0_25"}
    osnet = summary["osnet_x0_25"]
    assert osnet["engine"] == "ImageSoftmaxEngine" and osnet["params"] == record["params"]
    assert "gain_over_baseline" in osnet["targets"]["synthetic_occluded"]
    assert osnet["id_loss_per_epoch"] == {"0": record["id_loss_per_epoch"]}
    baseline = summary["baseline"]
    assert baseline["engine"] == "ours" and baseline["params"] == 1000
    assert baseline["final_id_loss"] == 1.5 and baseline["id_loss_per_epoch"] == {"0": None}
    assert "osnet_x0_25" in report["table"] and "ImageSoftmaxEngine" in report["table"]

    # A second call reuses both runs: nothing is trained again.
    monkeypatch.setattr(cb, "train_torchreid", lambda *a, **k: pytest.fail("trained again"))
    again = cb.main([*argv[: -len(tiny_opts) - 1], "--no-train", "--", *tiny_opts])
    assert again["runs"]["osnet_x0_25"]["0"]["rank1"] == record["rank1"]
    assert again["provenance"]["osnet_x0_25"]["0"].startswith("reused from")

    # Asked for another recipe, the kept torchreid run is refused, not passed off as new.
    common = ["--seeds", "0", "--work-dir", str(work), "--output", str(out), "--no-train"]
    with pytest.raises(ValueError, match=r"osnet_x0_25.record\.json: .*epochs = 1, .* asks for 2"):
        cb.main(["--models", "osnet_x0_25", *common, "--epochs", "2", "--", *tiny_opts])
    # So is one of ours whose record states another setting than this invocation's.
    kept = work / "seed0" / "baseline" / "record.json"
    write_json({**json.loads(kept.read_text()), "settings": {"epochs": 999}}, kept)
    with pytest.raises(ValueError, match=r"baseline run was trained with epochs = 999"):
        cb.main(["--models", "baseline", *common, "--epochs", "1", "--", *tiny_opts])


def test_ours_on_another_backbone_trains_that_backbone_in_its_own_folder(
    cb: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []

    def fake(cfg: Any, variant: str, output: Path, **kw: Any) -> tuple[dict, None]:
        seen.append((cfg.model.backbone, variant, output))
        return {"variant": variant}, None

    monkeypatch.setattr(cb, "train_variant", fake)
    cfg = embedded_config(seed=0)
    spec = cb.parse_model("pgflkd@osnet_x0_25")
    record = cb.run_model(cfg, spec, None, tmp_path)
    assert record == {"variant": "pgflkd", "model": "pgflkd@osnet_x0_25"}
    assert seen == [("osnet_x0_25", "pgflkd", tmp_path / "osnet_x0_25")]
    assert (tmp_path / spec.folder) == tmp_path / "osnet_x0_25" / "pgflkd"
    assert cfg.model.backbone == "resnet_mini"  # the config itself is untouched
    cb.run_model(cfg, cb.parse_model("pgflkd"), None, tmp_path)
    assert seen[-1] == ("resnet_mini", "pgflkd", tmp_path)
