"""``pgflkd run`` (the main job) end to end on a tiny embedded benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from torchreid_pgflkd.cli.main import main
from torchreid_pgflkd.utils.io import write_json


def test_main_command_writes_results_checkpoints_and_figures(
    tiny_opts: list[str], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    opts = [*tiny_opts, "train.max_epoch", "1"]
    tune = write_json({  # each model's choices on the validation split (benchmarks/tune.py)
        "benchmark": "embedded", "split": "validation", "chosen": {
            "baseline": {"try": "lr_x2", "overrides": ["train.lr", "0.002"]},
            "pgflkd": {"try": "kd_x2", "overrides": ["loss.kd_feat", "20.0"]},
        },
    }, tmp_path / "tune.json")  # fmt: skip
    argv = ["run", "--no-progress", "--seed", "3", "--output", str(out), "--tuned", str(tune)]
    assert main([*argv, "--", *opts]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["models"]) == {"baseline", "pgflkd"}
    baseline, pgflkd = (summary["models"][m]["settings"] for m in ("baseline", "pgflkd"))
    assert baseline["lr"] == 0.002 and baseline["loss_weights"]["kd_feat"] == 10.0
    assert pgflkd["lr"] != 0.002 and pgflkd["loss_weights"]["kd_feat"] == 20.0
    for record in summary["models"].values():
        assert {"rank1", "mAP", "mINP"} <= set(record)
        assert record["settings"]["seed"] == 3 and record["settings"]["data_seed"] == 3
        assert Path(record["checkpoint"]).is_file()
    assert summary["models"]["baseline"]["settings"]["feb"] is False
    assert set(summary["gain_points"]) == {"rank1", "mAP", "mINP"}
    for name in ("cmc.png", "ranked_list.png", "activations.png"):
        assert (out / name).stat().st_size > 1000, name
    table = capsys.readouterr().out
    assert "PGFL-KD (full)" in table and "MB only" in table


def _tiny_real_root(shared: Path, root: Path, ids: int = 6) -> None:
    """A few CUHK03 and Partial-REID people, with their BlazePose keypoints, in the shared
    layout under ``root`` (copied at test time from ../shared/data, never into the repo)."""
    import shutil

    def copy(src: Path, dst: Path, names: list[str]) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy2(src / name, dst / name)

    for split in ("train", "val"):
        folder = shared / "cuhk03_pair1" / "labeled" / split
        names = sorted(p.name for p in folder.glob("*.jpg") if int(p.name[:4]) < ids)
        copy(folder, root / "cuhk03_pair1" / "labeled" / split, names)
        kp = shared / "keypoints" / "blazepose" / "cuhk03_pair1" / "labeled" / split
        copy(kp, root / "keypoints" / "blazepose" / "cuhk03_pair1" / "labeled" / split,
             [n.replace(".jpg", "_keypoints.json") for n in names])  # fmt: skip
    for folder in ("occluded_body_images", "partial_body_images", "whole_body_images"):
        src = shared / "partial_reid" / "Partial-REID_Dataset" / folder
        names = sorted(p.name for p in src.glob("*.jpg") if int(p.name[:3]) <= ids)
        copy(src, root / "partial_reid" / "Partial-REID_Dataset" / folder, names)
        kp = shared / "keypoints" / "blazepose" / "partial_reid" / "Partial-REID_Dataset" / folder
        copy(kp, root / "keypoints" / "blazepose" / "partial_reid" / "Partial-REID_Dataset"
             / folder, [n.replace(".jpg", "_keypoints.json") for n in names])  # fmt: skip


def test_real_benchmark_run_on_a_handful_of_people(shared_data: Path, tmp_path: Path) -> None:
    """``pgflkd run --benchmark cuhk03`` end to end: 6 CUHK03 people to train, 6 others and 6
    Partial-REID people to test, every output of the embedded run plus the training poses."""
    root, out = tmp_path / "data", tmp_path / "out"
    _tiny_real_root(shared_data, root)
    tiny = ["train.max_epoch", "1", "train.warmup_epochs", "0", "train.milestones", "[5]",
            "data.height", "64", "data.width", "32", "data.workers", "0", "data.pad", "2",
            "sampler.batch_size", "8", "sampler.num_instances", "2"]  # fmt: skip
    args = ["run", "--benchmark", "cuhk03", "--data-root", str(root), "--output", str(out)]
    assert main([*args, "--no-progress", *tiny]) == 0
    summary = json.loads((out / "results.json").read_text())
    targets = {"cuhk03_pair1", "partial_reid_occluded", "partial_reid_partial"}
    for record in summary["models"].values():
        assert set(record["targets"]) == targets
        assert all(0 <= t["mAP"] <= 1 for t in record["targets"].values())
        assert Path(record["checkpoint"]).is_file()
        assert (Path(record["checkpoint"]).parent / "config.yaml").is_file()
    assert set(summary["gain_points_per_target"]) == targets
    for name in ("cmc.png", "ranked_list.png", "activations.png", "train_poses.png"):
        assert (out / name).stat().st_size > 1000, name
