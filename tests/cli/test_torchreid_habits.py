"""The commands as torchreid users use them: torchreid's flags, one-line errors, ``test`` /
``export`` / ``actmap`` from the checkpoint alone (its config, its classes, no ImageNet
download, no training set), and refusals where a config contradicts the checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from torchreid_pgflkd.cli.main import main, rewrite_argv
from torchreid_pgflkd.engine import checkpoint as ckpt_io

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


def test_torchreid_flags_are_rewritten_to_ours() -> None:
    argv = ["train", "--config-file", "c.yaml", "--root", "R", "-s", "a", "b", "-t", "c",
            "model.feb", "False"]  # fmt: skip
    assert rewrite_argv(argv) == [
        "train", "--config", "c.yaml", "model.feb", "False",
        "data.root", "R", "data.sources", "['a', 'b']", "data.targets", "['c']",
    ]  # fmt: skip
    assert rewrite_argv(["test", "--config-file=c.yaml", "--targets=x", "--debug"]) == [
        "--debug", "test", "--config", "c.yaml", "data.targets", "['x']",
    ]  # fmt: skip
    # fetch-keypoints has a --root of its own; export takes no overrides.
    assert rewrite_argv(["fetch-keypoints", "x", "--root", "R"]) == ["fetch-keypoints", "x",
                                                                    "--root", "R"]  # fmt: skip
    assert rewrite_argv(["export", "--config-file", "c.yaml"]) == ["export", "--config", "c.yaml"]


def test_errors_are_one_line_on_stderr_with_exit_code_2(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.pth"
    assert main(["test", "--weights", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint not found" in err and str(missing) in err
    assert "Traceback" not in err and "--debug" in err
    # --config-file is an option again, not swallowed by the overrides; a bad key is named.
    assert main(["train", "--config-file", str(CONFIG), "model.nope", "1"]) == 2
    assert "model.nope" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        main(["test", "--weights", str(missing), "--debug"])


@pytest.fixture
def trained(tiny_opts: list[str], tmp_path: Path) -> Path:
    """One tiny epoch, trained through torchreid's flags (--config-file, --root)."""
    opts = list(tiny_opts)
    root = opts.pop(opts.index("data.root") + 1)
    opts.remove("data.root")
    argv = ["train", "--no-progress", "--config-file", str(CONFIG), *opts,
            "train.max_epoch", "1", "--root", root]  # fmt: skip
    assert main(argv) == 0
    return tmp_path / "run"


def _err_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_test_reads_the_checkpoints_config_and_refuses_contradictions(
    trained: Path, tmp_path: Path, capsys
) -> None:
    weights = str(trained / "last.pth")
    out = tmp_path / "test.json"
    # No --config: the stored one. model.pretrained True would need ImageNet weights, which
    # resnet_mini does not have: it passes because the checkpoint's weights are used.
    argv = ["test", "--no-progress", "--weights", weights, "--output", str(out)]
    assert main([*argv, "model.pretrained", "True"]) == 0
    got = json.loads(out.read_text())["synthetic_occluded"]
    ref = json.loads((trained / "results.json").read_text())["synthetic_occluded"]
    assert got["rank1"] == pytest.approx(ref["rank1"]) and got["mAP"] == pytest.approx(ref["mAP"])

    for key, value in (("model.share_layer4", "True"), ("data.height", "128"),
                       ("model.last_stride", "2"), ("model.num_parts", "4")):  # fmt: skip
        assert main([*argv, key, value]) == 2, key
        assert f"{key}=" in _err_line(capsys)
    # A YAML with the same settings is accepted; one with another image size is not.
    assert main([*argv, "--config", str(trained / "config.yaml")]) == 0
    assert main([*argv, "--config", str(CONFIG)]) == 2  # embedded.yaml alone: 128x64
    assert "data.height" in _err_line(capsys)


def test_test_needs_only_the_target_datasets(trained: Path, tmp_path: Path) -> None:
    """A Partial-REID-layout copy of the test images in a root with no training data."""
    synthetic = next(p.parent for p in Path(_data_root(trained)).glob("*/query"))
    root = tmp_path / "elsewhere"
    for split, folder in (
        ("query", "partial_body_images"),
        ("bounding_box_test", "whole_body_images"),
    ):
        dest = root / "Partial_REID" / folder
        dest.mkdir(parents=True)
        for i, img in enumerate(sorted((synthetic / split).glob("*.jpg"))):
            shutil.copy(img, dest / f"{int(img.name.split('_')[0]):03d}_{i:03d}.jpg")
    out = tmp_path / "partial.json"
    argv = ["test", "--no-progress", "--weights", str(trained / "last.pth"), "--output",
            str(out), "--root", str(root), "-t", "partial_reid",
            "data.dataset_dir", '""']  # fmt: skip
    assert main(argv) == 0
    assert 0 <= json.loads(out.read_text())["partial_reid"]["rank1"] <= 1


def _data_root(run: Path) -> str:
    import yaml

    return yaml.safe_load((run / "config.yaml").read_text())["data"]["root"]


def test_export_and_actmap_from_checkpoints_alone(trained: Path, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    state = ckpt_io.read_checkpoint(trained / "last.pth")
    # What torchreid's own save_checkpoint writes: no meta, no config, a numpy rank-1.
    torchreid_ckpt = tmp_path / "model.pth.tar-1"
    torch.save({"state_dict": state["state_dict"], "epoch": 1, "rank1": np.float64(0.1)},
               torchreid_ckpt)  # fmt: skip
    out = tmp_path / "model.onnx"
    argv = ["export", "--weights", str(torchreid_ckpt), "--format", "onnx", "--output", str(out),
            "--image-size", "64", "32"]  # fmt: skip
    assert main(argv) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (features,) = session.run(None, {"images": np.random.rand(2, 3, 64, 32).astype(np.float32)})
    assert features.shape == (2, 256)

    figures = tmp_path / "actmaps"
    argv = ["actmap", "--no-progress", "--weights", str(trained / "last.pth"), "--output",
            str(figures), "--num", "3"]  # fmt: skip
    assert main(argv) == 0
    assert (figures / "actmap_synthetic_occluded.png").stat().st_size > 1000
