"""benchmarks/by_visibility.py: queries grouped by their visible keypoints, each group ranked
against the whole gallery, on two tiny trained runs of the embedded benchmark."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from torchreid_pgflkd.config import load_config
from torchreid_pgflkd.config.experiment import train_variant

SCRIPT = "by_visibility"  # imported by the bench_script fixture (conftest.py)
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


@pytest.fixture(scope="module")
def bv(bench_script: ModuleType) -> ModuleType:
    return bench_script


def test_groups_count_the_joints_at_or_above_the_threshold(bv: ModuleType) -> None:
    assert bv.group_names([0, 1, 15, 17, 18]) == ["0", "1-14", "15-16", "17"]
    pose = np.zeros((17, 3), dtype=np.float32)
    assert bv.visibility_group(pose, 0.2, [0, 1, 15, 17, 18]) == "0"
    pose[:15, 2] = 0.2  # exactly at the threshold counts as visible
    assert bv.visibility_group(pose, 0.2, [0, 1, 15, 17, 18]) == "15-16"
    pose[:, 2] = 0.9
    assert bv.visibility_group(pose, 0.2, [0, 1, 15, 17, 18]) == "17"
    for bad in ([1, 18], [0, 17], [0, 9, 9, 18], [0]):
        with pytest.raises(ValueError, match="--edges must rise strictly"):
            bv.group_names(bad)
    pose[3, 2] = np.nan
    with pytest.raises(ValueError, match="finite"):
        bv.visibility_group(pose, 0.2, [0, 18])


def test_groups_partition_the_queries_and_the_reference_is_paired_per_seed(
    bv: ModuleType, tiny_opts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(CONFIG, tiny_opts)
    work = tmp_path / "work" / "seed0"
    for variant in ("baseline", "pgflkd"):
        train_variant(cfg, variant, work, progress=False)
    out = tmp_path / "bv.json"
    # Edges at every count, so that the tiny set's queries fall in several groups.
    argv = ["by_visibility.py", "--runs", str(work / "baseline"), str(work / "pgflkd"),
            "--reference", "pgflkd", "--edges", *map(str, range(19)),
            "--output", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    bv.main()
    report = json.loads(out.read_text())
    runs = {r["variant"]: r for r in report["runs"].values()}
    (seed,) = {r["seed"] for r in runs.values()}
    assert seed == cfg.train.seed
    for run in runs.values():
        ((name, res),) = run["targets"].items()
        groups = res["groups"]
        counts = [g["num_queries"] for g in groups.values()]
        assert len(groups) >= 2 and all(c > 0 for c in counts)
        # Every query is valid in this set: the whole set's figures are the groups' means.
        for metric in ("rank1", "mAP", "mINP"):
            weighted = sum(g[metric] * g["num_queries"] for g in groups.values()) / sum(counts)
            assert weighted == pytest.approx(res["all"][metric], abs=1e-6)
        assert list(groups) == sorted(groups, key=lambda k: int(k.split("-")[0]))
    base, ours = runs["baseline"]["targets"][name], runs["pgflkd"]["targets"][name]
    for group in ["all", *base["groups"]]:
        cell = report["summary"]["baseline"][f"{name}/{group}"]
        b = base["all"] if group == "all" else base["groups"][group]
        o = ours["all"] if group == "all" else ours["groups"][group]
        assert cell["gain_of_reference"]["mAP"] == [pytest.approx(100 * (o["mAP"] - b["mAP"]))]
    assert "gain_of_reference" not in report["summary"]["pgflkd"][f"{name}/all"]

    # An earlier report's runs count again without their folders: the same summary.
    again = tmp_path / "again.json"
    monkeypatch.setattr(sys, "argv", ["by_visibility.py", "--restore-from", str(out),
                                      "--reference", "pgflkd", "--edges", *map(str, range(19)),
                                      "--output", str(again)])  # fmt: skip
    bv.main()
    restored = json.loads(again.read_text())
    assert restored["summary"] == report["summary"]
    assert {r["restored_from"] for r in restored["runs"].values()} == {str(out)}
    for argv_tail, message in (
        (["--runs", str(work / "baseline"), "--edges", *map(str, range(19))],
         "are both baseline"),
        ([], r"its groups have edges \[0, 1, 2,"),
        (["--targets", "market1501", "--edges", *map(str, range(19))],
         r"has no test set \['market1501'\]"),
    ):  # fmt: skip
        monkeypatch.setattr(sys, "argv", ["by_visibility.py", "--restore-from", str(out),
                                          *argv_tail])  # fmt: skip
        with pytest.raises(SystemExit, match=message):
            bv.main()

    # The same variant and seed twice, a folder that is not a finished run, an unknown set.
    for runs_asked, message in (
        ([work / "pgflkd", work / "pgflkd"], f"are both pgflkd, seed {seed}"),
        ([tmp_path], "not the record of a finished run"),
    ):
        monkeypatch.setattr(sys, "argv", ["by_visibility.py", "--runs", *map(str, runs_asked)])
        with pytest.raises(SystemExit, match=message):
            bv.main()
    broken = tmp_path / "broken"
    shutil.copytree(work / "baseline", broken)
    (broken / "last.pth").unlink()
    monkeypatch.setattr(sys, "argv", ["by_visibility.py", "--runs", str(broken)])
    with pytest.raises(SystemExit, match=r"broken: no last\.pth"):
        bv.main()
    monkeypatch.setattr(sys, "argv", ["by_visibility.py", "--runs", str(work / "baseline"),
                                      "--targets", "market1501"])  # fmt: skip
    with pytest.raises(SystemExit, match=r"no test set \['market1501'\]"):
        bv.main()

    # Only the test sets asked for are built and ranked: a run whose config also names a set
    # with no data here is read for the one it has.
    two = tmp_path / "two_targets"
    shutil.copytree(work / "baseline", two)
    saved = load_config(two / "config.yaml")
    saved.defrost()
    saved.data.targets = [name, "market1501"]
    (two / "config.yaml").write_text(saved.dump())
    only = bv.evaluate_run(two, [name], [0, 18])
    assert list(only) == [name] and only[name]["all"] == base["all"]


def test_count_reads_every_keypoint_file_and_names_a_bad_one(
    bv: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "kp" / "train"
    (folder / "a").mkdir(parents=True)
    whole = [[10.0, 10.0 + i, 0.9] for i in range(17)]
    half = [[10.0, 10.0 + i, 0.9 if i < 5 else 0.1] for i in range(17)]
    for name, data in (("a/x_keypoints.json", []), ("y_keypoints.json", [{"keypoints": whole}]),
                       ("z_keypoints.json", [{"keypoints": half, "is_target": True}])):
        (folder / name).write_text(json.dumps(data))  # fmt: skip
    out = tmp_path / "counts.json"
    monkeypatch.setattr(sys, "argv", ["by_visibility.py", "--count", str(folder),
                                      "--output", str(out)])  # fmt: skip
    bv.main()
    counts = json.loads(out.read_text())["counts"][str(folder)]
    assert counts["files"] == 3
    assert counts["counts"] == {"0": 1, "1-14": 1, "15-16": 0, "17": 1}
    (folder / "bad_keypoints.json").write_text("{not json")
    with pytest.raises(SystemExit, match=r"bad_keypoints\.json"):
        bv.main()
    monkeypatch.setattr(sys, "argv", ["by_visibility.py", "--count", str(tmp_path / "none")])
    with pytest.raises(SystemExit, match="no keypoint files"):
        bv.main()
