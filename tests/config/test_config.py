"""Configs: every file loads, bad values name the allowed ones, the pose geometry follows."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchreid_pgflkd.config import load_config
from torchreid_pgflkd.config.experiment import model_of, tuned_overrides
from torchreid_pgflkd.utils.io import write_json

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"
CONFIGS = sorted(CONFIG.parent.glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_file_loads_and_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.data.sources and cfg.data.targets


def test_bad_config_values_name_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"train\.amp='fp8'.*'none', 'bf16', 'fp16'"):
        load_config(CONFIG, ["train.amp", "fp8"])
    with pytest.raises(ValueError, match="model.backbone"):
        load_config(CONFIG, ["model.backbone", "vgg16"])


def test_embedded_config_file_equals_the_main_command_preset() -> None:
    from torchreid_pgflkd.config.presets import preset_opts

    assert load_config(CONFIG) == load_config(None, preset_opts("cpu"))


def test_num_parts_without_a_grouping_is_refused() -> None:
    with pytest.raises(ValueError, match=r"model\.num_parts=5.*\(1, 2, 3, 4, 6, 8\)"):
        load_config(CONFIG, ["model.num_parts", "5"])


@pytest.mark.parametrize(
    ("opts", "expected"),
    [([], (6, 16)), (["model.num_parts", "4"], (4, 16)), (["model.last_stride", "2"], (6, 32))],
)
def test_one_pose_geometry_for_data_and_model(opts: list[str], expected: tuple) -> None:
    from torchreid_pgflkd.config.build import pose_geometry

    geometry = pose_geometry(load_config(CONFIG, opts))
    assert (geometry.num_parts, geometry.stride) == expected
    assert geometry.feature_size((128, 64)) == ((8, 4) if expected[1] == 16 else (4, 2))


def test_cuhk03_config_file_equals_the_real_benchmark_preset() -> None:
    from torchreid_pgflkd.config.presets import preset_opts

    assert load_config(CONFIG.with_name("cuhk03.yaml")) == load_config(None, preset_opts("cuhk03"))


def test_benchmark_config_validation_splits_never_touch_the_test_data():
    from torchreid_pgflkd.config.experiment import VALIDATION_DATA_SEED, benchmark_config

    test = benchmark_config("embedded", seed=2)
    val = benchmark_config("embedded", seed=2, validate=True)
    assert (test.synthetic.seed, test.train.seed) == (2, 2)
    assert (val.synthetic.seed, val.train.seed) == (VALIDATION_DATA_SEED + 2, 2)
    # the validation draw is a different folder of people, whatever the training seed
    assert {VALIDATION_DATA_SEED + s for s in range(10)}.isdisjoint(range(10))
    real = benchmark_config("cuhk03", seed=1)
    held = benchmark_config("cuhk03", seed=1, validate=True)
    assert real.data.sources == ["cuhk03_pair1"] and "partial_reid" in " ".join(real.data.targets)
    assert held.data.sources == ["cuhk03_pair1_holdout"]
    # the held-out people's queries in three views, none of them the augmentation's occluder
    assert held.data.targets == [f"cuhk03_pair1_holdout_{v}" for v in ("whole", "partial", "blob")]
    assert held.train.seed == 1
    with pytest.raises(ValueError, match="embedded benchmark only"):
        benchmark_config("cuhk03", seed=0, preset="gpu")
    with pytest.raises(ValueError, match="unknown benchmark"):
        benchmark_config("market", seed=0)


def test_pose_and_branch_init_form_a_2x2_around_pgflkd() -> None:
    """C3 flips pose and branch initialisation together; the other two cells flip one each,
    and every cell keeps PGFL-KD's branches and losses."""
    from torchreid_pgflkd.config.experiment import benchmark_config, variant_config

    cfg = benchmark_config("embedded", seed=0)
    variants = ("pgflkd", "independent_init", "no_pose_copied", "mutual_no_pose")
    configs = {variant: variant_config(cfg, variant) for variant in variants}
    cells = {v: (c.data.pose_source, c.model.branch_init) for v, c in configs.items()}
    assert cells == {
        "pgflkd": ("keypoints", "copy"),
        "independent_init": ("keypoints", "independent"),
        "no_pose_copied": ("none", "copy"),
        "mutual_no_pose": ("none", "independent"),
    }
    for variant, c in configs.items():
        assert c.model.feb and c.model.sab and c.model.interaction and c.loss.kd_attn > 0
        assert model_of(variant) == "pgflkd"  # they take PGFL-KD's tuned choices
    # A tuned choice of independent branches (CUHK03's round 2) moves PGFL-KD, not the
    # copied-branch control: that cell names its initialisation.
    tuned = benchmark_config("embedded", seed=0, opts=["model.branch_init", "independent"])
    assert variant_config(tuned, "no_pose_copied").model.branch_init == "copy"
    assert variant_config(tuned, "pgflkd").model.branch_init == "independent"


@pytest.mark.parametrize(
    "which, expected",
    [("embedded", (60, 6, [40, 54])), ("cuhk03", (30, 4, [20, 28]))],
)
def test_c4_doubles_each_benchmarks_own_schedule(which: str, expected: tuple) -> None:
    from torchreid_pgflkd.config.experiment import benchmark_config, variant_config

    cfg = benchmark_config(which, seed=0)
    c4 = variant_config(cfg, "baseline_2x")
    assert (c4.train.max_epoch, c4.train.warmup_epochs, list(c4.train.milestones)) == expected
    assert 2 * cfg.train.max_epoch == expected[0]  # twice whatever the benchmark trains
    assert not (c4.model.feb or c4.model.sab or c4.model.interaction)
    with pytest.raises(ValueError, match="unknown variant 'c4'"):
        variant_config(cfg, "c4")


def test_tuned_choices_must_come_from_this_benchmarks_validation_split(tmp_path: Path) -> None:
    test_split = write_json(
        {"benchmark": "embedded", "split": "test", "chosen": {}}, tmp_path / "t.json"
    )
    with pytest.raises(ValueError, match=r"t\.json: choices made on embedded's test split"):
        tuned_overrides([test_split], "embedded")
    other = write_json(
        {"benchmark": "cuhk03", "split": "validation", "chosen": {}}, tmp_path / "c.json"
    )
    with pytest.raises(ValueError, match="made on cuhk03's validation split"):
        tuned_overrides([other], "embedded")
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(ValueError, match=r"x\.json: not a report of benchmarks/tune\.py"):
        tuned_overrides([tmp_path / "x.json"], "embedded")
    assert model_of("baseline+occ") == "baseline" and model_of("no_kd_attn") == "pgflkd"
