"""Every config key is checked when the config loads: a bad value or a bad YAML shape is a
``ValueError`` naming the key and what it takes, not a late unrelated failure."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchreid_pgflkd.config import load_config
from torchreid_pgflkd.engine import checkpoint as ckpt_io

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        # Before: loaded; every joint invisible, so every pose loss silently turned off.
        ("data.visibility_threshold", "5.0", r"in \[0, 1\] \(a keypoint confidence"),
        # Before: failed later in the sampler, the DataLoader or with ZeroDivisionError.
        ("sampler.batch_size", "0", ">= 1"),
        ("sampler.batch_size", "-8", ">= 1"),
        ("sampler.num_instances", "0", ">= 1"),
        ("sampler.test_batch_size", "0", ">= 1"),
        ("data.workers", "-1", ">= 0"),
        ("synthetic.num_train_ids", "0", ">= 2"),
        ("synthetic.num_test_ids", "0", ">= 1"),
        ("train.print_freq", "0", ">= 1"),
        ("train.lr", "0.0", "> 0"),
        ("loss.label_smoothing", "1.0", r"in \[0, 1\)"),
        ("train.milestones", "[0, 5]", "increasing epoch numbers >= 1"),
        # Before: accepted by yacs (None replaces anything), then a TypeError in training.
        ("train.lr", "None", "must be a number, got None"),
        ("sampler.batch_size", "None", "must be an integer, got None"),
        ("train.milestones", "['a']", r"train\.milestones\[0\] must be an integer"),
        ("data.sources", "market1501", "must be a list of strings"),
        ("train", "5", "train must be a section"),
        ("train.lrr", "1.0", "unknown config key 'train.lrr'"),
    ],
)
def test_config_bad_values_name_the_key_and_what_it_takes(
    key: str, value: str, expected: str
) -> None:
    with pytest.raises(ValueError, match=expected) as info:
        load_config(CONFIG, [key, value])
    assert key.split("[")[0] in str(info.value)


def test_config_keep_last_0_means_no_snapshots() -> None:
    """Before: train.keep_last 0 loaded, then pruning raised after the first epoch."""
    cfg = load_config(CONFIG, ["train.keep_last", "0"])
    assert cfg.train.keep_last == 0 and cfg.train.snapshot_freq == 0
    assert ckpt_io.prune_checkpoints(Path("absent"), keep_last=0) == []
    with pytest.raises(ValueError, match=r"snapshot_freq=2 with train\.keep_last=0"):
        load_config(CONFIG, ["train.keep_last", "0", "train.snapshot_freq", "2"])


def test_config_numbers_and_booleans_are_read_as_their_key_expects() -> None:
    cfg = load_config(CONFIG, ["train.lr", "1", "model.feb", "false"])
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.model.feb is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Before: AttributeError / TypeError from inside yacs.
        ("- model\n- data\n", r"must map sections to settings .* found \['model', 'data'\]"),
        ("5\n", "must map sections to settings"),
        ("train: [1, 2]\n", r"config train must be a section .* got \[1, 2\] \(a list\)"),
        ("train:\n", r"config train must be a section .* got None \(null\)"),
        # Before: loaded; ZeroDivisionError / TypeError later.
        ("sampler:\n  num_instances:\n", r"sampler\.num_instances must be an integer, got None"),
        ("train:\n  lr: fast\n", r"train\.lr must be a number, got 'fast' \(a string\)"),
        ("data:\n  flip_prob: [0.5]\n", r"data\.flip_prob must be a number, got \[0\.5\]"),
        ("model: {feb: 1}\n", r"model\.feb must be true or false, got 1"),
        ("train: {lr: 0.1\n", "is not valid YAML"),
    ],
)
def test_config_yaml_of_the_wrong_shape_names_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=expected) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_config_python_files_are_refused_not_executed(tmp_path: Path) -> None:
    """Before: yacs imported a .py config, running whatever it held."""
    marker = tmp_path / "ran"
    script = tmp_path / "config.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\ncfg = {{}}\n")
    with pytest.raises(ValueError, match=r"only YAML files \(\.yaml, \.yml\)"):
        load_config(script)
    assert not marker.exists()
    (tmp_path / "empty.yml").write_text("")
    assert load_config(tmp_path / "empty.yml").train.lr > 0
