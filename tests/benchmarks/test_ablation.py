"""benchmarks/ablation.py: restoring runs from earlier reports (settings checked) and the
provenance of every record in the report, without training (``train_variant`` is faked)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from torchreid_pgflkd.config.experiment import embedded_config, settings_of, variant_config
from torchreid_pgflkd.utils.io import write_json

SCRIPT = "ablation"  # imported by the bench_script fixture (conftest.py)


@pytest.fixture(scope="module")
def ab(bench_script: ModuleType) -> ModuleType:
    return bench_script


def _record(cfg: Any, variant: str, rank1: float) -> dict[str, Any]:
    cfg = variant_config(cfg, variant)
    target = {"rank1": rank1, "rank5": 0.9, "mAP": rank1 / 2, "mINP": 0.1}
    return {
        "variant": variant, **target, "targets": {"synthetic_occluded": target},
        "train_and_eval_seconds": 1.0, "settings": settings_of(cfg),
    }  # fmt: skip


def _report(path: Path, runs: dict[str, dict[str, dict]]) -> Path:
    return write_json({"benchmark": "embedded", "runs": runs}, path)


def test_restore_writes_only_missing_records_whose_settings_match(
    ab: ModuleType, tmp_path: Path
) -> None:
    cfg = embedded_config(seed=3)
    old = _report(tmp_path / "old.json", {
        "baseline": {"3": _record(cfg, "baseline", 0.3), "4": _record(cfg, "baseline", 0.9)},
        "pgflkd": {"3": _record(cfg, "pgflkd", 0.4)},
    })  # fmt: skip
    seed_dir = tmp_path / "work" / "seed3"
    write_json({"variant": "pgflkd", "rank1": 0.5}, seed_dir / "pgflkd" / "record.json")
    restored = ab.restore_records([old], cfg, 3, ["baseline", "pgflkd", "stripes"], seed_dir)
    assert restored == {"baseline": str(old)}  # pgflkd: already run here; stripes: not in it
    record = json.loads((seed_dir / "baseline" / "record.json").read_text())
    assert record["rank1"] == 0.3 and record["restored_from"] == str(old)  # seed 3's, not 4's
    assert json.loads((seed_dir / "pgflkd" / "record.json").read_text())["rank1"] == 0.5
    assert not (seed_dir / "stripes").exists()


def test_a_run_trained_with_other_settings_is_not_restored(
    ab: ModuleType, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = embedded_config(seed=0)
    other = cfg.clone()
    other.defrost()
    other.merge_from_list(["train.max_epoch", "7"])
    old = _report(tmp_path / "old.json", {"baseline": {"0": _record(other, "baseline", 0.3)}})
    assert ab.restore_records([old], cfg, 0, ["baseline"], tmp_path / "seed0") == {}
    assert not (tmp_path / "seed0").exists()
    assert "seed 0 baseline not restored (trained with epochs = 7" in caplog.text
    other = cfg.clone()
    other.defrost()
    other.merge_from_list(["synthetic.occluder_textures", "outside"])
    old = _report(tmp_path / "old.json", {"pgflkd": {"0": _record(other, "pgflkd", 0.3)}})
    assert ab.restore_records([old], cfg, 0, ["pgflkd"], tmp_path / "seed0") == {}
    assert "occluder_textures = 'outside'" in caplog.text
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SystemExit, match=r"bad\.json: not a report of this script"):
        ab.restore_records([tmp_path / "bad.json"], cfg, 0, ["baseline"], tmp_path / "seed0")


def test_a_run_of_another_variant_with_the_same_settings_is_restored(
    ab: ModuleType, tmp_path: Path
) -> None:
    """The baseline tuned to twice the epochs is the same run as an earlier C4."""
    cfg = embedded_config(seed=1)
    c4 = _record(cfg, "baseline_2x", 0.45)
    old = _report(tmp_path / "old.json", {
        "baseline": {"1": _record(cfg, "baseline", 0.3)}, "baseline_2x": {"1": c4},
        "pgflkd": {"1": {**_record(cfg, "pgflkd", 0.5), "settings": {}}},  # states nothing
    })  # fmt: skip
    tuned = variant_config(cfg, "baseline", ["train.max_epoch", "60", "train.warmup_epochs", "6",
                                             "train.milestones", "[40, 54]"])  # fmt: skip
    seed_dir = tmp_path / "seed1"
    got = ab.restore_records([old], tuned, 1, ["baseline", "stripes"], seed_dir)
    assert got == {"baseline": f"{old} (its baseline_2x run)"}
    record = json.loads((seed_dir / "baseline" / "record.json").read_text())
    assert record["rank1"] == 0.45 and record["variant"] == "baseline"


def test_report_says_where_each_record_came_from(
    ab: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_train(cfg: Any, variant: str, output: Path, **kw: Any) -> tuple[dict, None]:
        record = _record(cfg, variant, 0.6)
        write_json(record, output / variant / "record.json")
        return record, None

    cfg = embedded_config(seed=0)
    old = _report(tmp_path / "old.json", {"baseline": {"0": _record(cfg, "baseline", 0.2)}})
    work = tmp_path / "work"
    write_json(_record(cfg, "stripes", 0.5), work / "seed0" / "stripes" / "record.json")
    monkeypatch.setattr(ab, "train_variant", fake_train)
    out = tmp_path / "report.json"
    monkeypatch.setattr(sys, "argv", [
        "ablation.py", "--seeds", "0", "--variants", "baseline", "pgflkd", "stripes",
        "--work-dir", str(work), "--output", str(out), "--restore-from", str(old),
    ])  # fmt: skip
    ab.main()
    report = json.loads(out.read_text())
    assert report["provenance"] == {
        "baseline": {"0": f"restored from {old}"},
        "pgflkd": {"0": "trained by this run"},
        "stripes": {"0": f"reused from {work / 'seed0' / 'stripes' / 'record.json'}"},
    }
    gain = report["summary"]["pgflkd"]["targets"]["synthetic_occluded"]["gain_over_baseline"]
    assert gain["rank1"]["mean"] == pytest.approx(40.0)  # 0.6 trained vs 0.2 restored


def test_a_run_in_the_work_dir_with_other_settings_is_refused_not_reused(
    ab: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A work dir kept across a changed choice must not pass the old run off as the new one."""
    cfg = embedded_config(seed=0)
    old = cfg.clone()
    old.defrost()
    old.merge_from_list(["model.branch_init", "independent"])
    work = tmp_path / "work"
    stale = write_json(_record(old, "pgflkd", 0.5), work / "seed0" / "pgflkd" / "record.json")
    monkeypatch.setattr(ab, "train_variant", lambda *a, **k: pytest.fail("must not train"))
    monkeypatch.setattr(sys, "argv", [
        "ablation.py", "--seeds", "0", "--variants", "pgflkd", "--work-dir", str(work),
        "--output", str(tmp_path / "report.json"),
    ])  # fmt: skip
    with pytest.raises(SystemExit, match="branch_init = 'independent', this run asks for 'copy'"):
        ab.main()
    assert not (tmp_path / "report.json").exists()
    # The same run is reused when the invocation asks for its settings.
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--", "model.branch_init", "independent"])
    ab.main()
    assert json.loads((tmp_path / "report.json").read_text())["provenance"] == {
        "pgflkd": {"0": f"reused from {stale}"}
    }


def test_tuned_choices_go_to_their_model_before_the_variant_switches(
    ab: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: dict[str, Any] = {}

    def fake_train(cfg: Any, variant: str, output: Path, **kw: Any) -> tuple[dict, None]:
        trained[variant] = variant_config(cfg, variant)
        record = _record(cfg, variant, 0.5)
        write_json(record, output / variant / "record.json")
        return record, None

    tune = write_json({
        "benchmark": "embedded", "split": "validation",
        "chosen": {
            "baseline": {"try": "epochs_x2", "overrides": ["train.max_epoch", 60]},
            "pgflkd": {"try": "kd_x2", "overrides": ["loss.kd_feat", "20.0"]},
        },
    }, tmp_path / "tune.json")  # fmt: skip
    monkeypatch.setattr(ab, "train_variant", fake_train)
    out = tmp_path / "report.json"
    monkeypatch.setattr(sys, "argv", [
        "ablation.py", "--seeds", "0", "--variants", "baseline", "baseline_2x", "stripes",
        "--work-dir", str(tmp_path / "work"), "--output", str(out), "--tuned", str(tune),
    ])  # fmt: skip
    ab.main()
    assert trained["baseline"].train.max_epoch == 60 and trained["baseline"].loss.kd_feat == 10.0
    assert trained["baseline_2x"].train.max_epoch == 120  # C4: twice the *tuned* schedule
    assert trained["stripes"].loss.kd_feat == 20.0 and trained["stripes"].train.max_epoch == 30
    assert json.loads(out.read_text())["tuned"]["overrides"]["pgflkd"] == ["loss.kd_feat", "20.0"]
