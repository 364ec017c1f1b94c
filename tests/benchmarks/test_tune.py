"""benchmarks/tune.py: equal tries per model, every try on the validation split, the choice
by validation mAP, and resuming from the runs already trained (``train_variant`` is faked)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from torchreid_pgflkd.config.experiment import settings_of, variant_config
from torchreid_pgflkd.config.presets import VALIDATION_DATA_SEED
from torchreid_pgflkd.utils.io import write_json

SCRIPT = "tune"  # imported by the bench_script fixture (conftest.py)


@pytest.fixture(scope="module")
def tune(bench_script: ModuleType) -> ModuleType:
    return bench_script


def test_a_space_must_give_every_model_the_same_tries_and_the_defaults(tune: ModuleType) -> None:
    for space in tune.SPACES.values():
        tune.check_space(space)
    with pytest.raises(ValueError, match="same number of tries"):
        tune.check_space({"baseline": {"default": []}, "pgflkd": {"default": [], "b": []}})
    with pytest.raises(ValueError, match="pgflkd: the defaults must be one of the tries"):
        tune.check_space({"baseline": {"default": []}, "pgflkd": {"other": []}})


def test_tries_train_on_the_validation_split_and_the_best_mAP_is_chosen(
    tune: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[Any] = []
    # validation mAP: the baseline's by learning rate (best x2), PGFL-KD's by the feature
    # distillation weight (best at the default 10)
    quality = {("baseline", 0.001): 0.2, ("baseline", 0.002): 0.3, ("baseline", 0.0005): 0.1,
               ("pgflkd", 10.0): 0.4, ("pgflkd", 20.0): 0.35, ("pgflkd", 5.0): 0.3}  # fmt: skip

    def fake_train(cfg: Any, variant: str, output: Path, **kw: Any) -> tuple[dict, None]:
        cfg = variant_config(cfg, variant)
        seen.append(cfg)
        q = quality[variant, cfg.train.lr if variant == "baseline" else cfg.loss.kd_feat]
        target = {"rank1": q + 0.1, "rank5": 0.9, "mAP": q, "mINP": q / 2}
        record = {"variant": variant, **target, "targets": {"synthetic_occluded": target},
                  "train_and_eval_seconds": 1.0, "settings": settings_of(cfg)}  # fmt: skip
        write_json(record, output / variant / "record.json")
        return record, None

    monkeypatch.setattr(tune, "train_variant", fake_train)
    out, work = tmp_path / "tune.json", tmp_path / "work"
    argv = ["tune.py", "--space", "weights", "--work-dir", str(work), "--output", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    tune.main()
    assert len(seen) == 6  # three tries each
    assert {c.synthetic.seed for c in seen} == {VALIDATION_DATA_SEED}  # never the test draw
    report = json.loads(out.read_text())
    assert report["split"] == "validation" and report["tries_per_model"] == {
        "baseline": 3, "pgflkd": 3,
    }  # fmt: skip
    assert report["chosen"]["baseline"] == {"try": "lr_x2", "overrides": ["train.lr", "0.002"]}
    assert report["chosen"]["pgflkd"] == {"try": "default", "overrides": []}
    assert report["summary"]["pgflkd"]["kd_x2"]["mAP"] == pytest.approx(35.0)

    seen.clear()  # a second run reuses every record and trains nothing
    tune.main()
    assert seen == [] and json.loads(out.read_text())["chosen"] == report["chosen"]


def test_models_and_tries_restrict_what_is_trained(
    tune: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained: list[tuple[str, str]] = []

    def fake_train(cfg: Any, variant: str, output: Path, **kw: Any) -> tuple[dict, None]:
        trained.append((variant, output.name))
        target = {"rank1": 0.5, "rank5": 0.9, "mAP": 0.4, "mINP": 0.2}
        record = {"variant": variant, **target, "targets": {"synthetic_occluded": target},
                  "train_and_eval_seconds": 1.0}  # fmt: skip
        write_json(record, output / variant / "record.json")
        return record, None

    monkeypatch.setattr(tune, "train_variant", fake_train)
    base = ["tune.py", "--work-dir", str(tmp_path / "w"), "--output", str(tmp_path / "t.json")]
    monkeypatch.setattr(sys, "argv", [*base, "--models", "pgflkd", "--tries", "kd_x2", "default"])
    tune.main()
    assert sorted(trained) == [("pgflkd", "default"), ("pgflkd", "kd_x2")]
    monkeypatch.setattr(sys, "argv", [*base, "--tries", "lr_x3"])
    with pytest.raises(SystemExit, match=r"space 'weights' has no \['lr_x3'\]"):
        tune.main()


def test_restore_from_an_earlier_report_keeps_its_runs_when_the_settings_match(
    tune: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    trained: list[tuple[str, str]] = []

    def fake_train(cfg: Any, variant: str, output: Path, **kw: Any) -> tuple[dict, None]:
        trained.append((variant, output.name))
        cfg = variant_config(cfg, variant)
        q = 0.1 + 0.1 * len(trained)
        target = {"rank1": q, "rank5": 0.9, "mAP": q, "mINP": q / 2}
        record = {"variant": variant, **target, "targets": {"synthetic_occluded": target},
                  "train_and_eval_seconds": 1.0, "settings": settings_of(cfg)}  # fmt: skip
        write_json(record, output / variant / "record.json")
        return record, None

    monkeypatch.setattr(tune, "train_variant", fake_train)
    old = tmp_path / "old.json"
    base = ["tune.py", "--space", "weights"]
    monkeypatch.setattr(sys, "argv", [*base, "--work-dir", str(tmp_path / "a"), "--output",
                                      str(old), "--models", "baseline"])  # fmt: skip
    tune.main()
    before = json.loads(old.read_text())
    assert len(trained) == 3 and "pgflkd" not in before["chosen"]

    # A fresh work dir with the earlier report: the baseline's tries come back, PGFL-KD trains.
    trained.clear()
    new = tmp_path / "new.json"
    argv = [*base, "--work-dir", str(tmp_path / "b"), "--output", str(new),
            "--restore-from", str(old)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    tune.main()
    assert sorted(trained) == [("pgflkd", "default"), ("pgflkd", "kd_x0.5"), ("pgflkd", "kd_x2")]
    after = json.loads(new.read_text())
    for try_name, records in before["runs"]["baseline"].items():
        (was,), (now,) = records, after["runs"]["baseline"][try_name]
        assert now["restored_from"] == str(old)
        assert {k: now[k] for k in was} == was  # the same figures, the same seed
    assert after["chosen"]["baseline"] == before["chosen"]["baseline"]

    # Runs trained with other settings (here 7 epochs) are not taken; a warning says why.
    trained.clear()
    argv = [*base, "--work-dir", str(tmp_path / "c"), "--output", str(new), "--restore-from",
            str(old), "--models", "baseline", "--", "train.max_epoch", "7"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    tune.main()
    assert len(trained) == 3
    assert "seed 0 baseline default not restored (trained with epochs = 30" in caplog.text

    (tmp_path / "bad.json").write_text('{"runs": []}')
    monkeypatch.setattr(sys, "argv", [*base, "--restore-from", str(tmp_path / "bad.json")])
    with pytest.raises(SystemExit, match=r"bad\.json: not a report of this script"):
        tune.main()


def test_a_try_in_the_work_dir_with_other_settings_is_refused(
    tune: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = variant_config(
        tune.benchmark_config("embedded", seed=0, validate=True, opts=["train.lr", "0.003"]),
        "baseline",
    )
    target = {"rank1": 0.5, "rank5": 0.9, "mAP": 0.4, "mINP": 0.2}
    record = {"variant": "baseline", **target, "targets": {"synthetic_occluded": target},
              "train_and_eval_seconds": 1.0, "settings": settings_of(cfg)}  # fmt: skip
    work = tmp_path / "w"
    write_json(record, work / "seed0" / "lr_x2" / "baseline" / "record.json")
    monkeypatch.setattr(tune, "train_variant", lambda *a, **k: pytest.fail("must not train"))
    monkeypatch.setattr(sys, "argv", ["tune.py", "--work-dir", str(work), "--output",
                                      str(tmp_path / "t.json"), "--no-train"])  # fmt: skip
    with pytest.raises(SystemExit, match=r"lr_x2/baseline/record\.json: this baseline run was "
                                         r"trained with lr = 0\.003, this run asks for 0\.002"):
        tune.main()
