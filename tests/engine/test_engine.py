"""The engine on the tiny embedded benchmark: steps, logging, NaN stop, resume, branches."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.engine import NonFiniteLossError
from torchreid_pgflkd.engine import checkpoint as ckpt_io

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"
CONFIGS = sorted(CONFIG.parent.glob("*.yaml"))


def _engine(opts: list[str]):
    cfg = build.prepare_synthetic(load_config(CONFIG, opts), progress=False)
    dm = build.build_datamanager(cfg)
    return cfg, build.build_engine(cfg, dm, progress=False)


def test_a_few_iterations_log_every_named_term_and_lower_the_loss(tiny_opts: list[str]) -> None:
    cfg, engine = _engine([*tiny_opts, "train.lr", "0.003"])
    engine.max_epoch = 1
    batch = next(iter(engine.train_loader))
    assert batch["pose_maps"].shape[1:] == (7, 4, 2)
    first = engine.forward_backward(batch)
    for _ in range(8):
        last = engine.forward_backward(batch)
    expected = {
        "loss", "loss_mb_id", "loss_mb_tri", "loss_feb_id", "loss_feb_tri", "loss_sab_id",
        "loss_sab_tri", "loss_sab_align", "loss_mb_kdlogit_feb", "loss_mb_kdlogit_sab",
        "loss_mb_kdfeat_feb", "loss_mb_kdfeat_sab", "loss_mb_kdattn_feb", "loss_mb_inter_feb",
        "loss_mb_inter_sab",
    }  # fmt: skip
    assert set(first) == expected
    assert last["loss"] < first["loss"]  # overfits one batch


def test_baseline_ablation_has_main_branch_terms_only(tiny_opts: list[str]) -> None:
    opts = [*tiny_opts, "model.feb", "False", "model.sab", "False", "model.interaction", "False"]
    _, engine = _engine(opts)
    summary = engine.forward_backward(next(iter(engine.train_loader)))
    assert set(summary) == {"loss", "loss_mb_id", "loss_mb_tri"}


def test_non_finite_loss_stops_naming_step_and_term(tiny_opts: list[str]) -> None:
    _, engine = _engine(tiny_opts)
    batch = next(iter(engine.train_loader))
    with torch.no_grad():
        engine.model.heads["feb"].classifier.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLossError, match=r"step 0 .*loss_feb_id = nan"):
        engine.forward_backward(batch)


def test_run_saves_loadable_checkpoints_and_results(tiny_opts: list[str], tmp_path: Path) -> None:
    cfg, engine = _engine(tiny_opts)
    results = engine.run(save_dir=tmp_path / "run", max_epoch=1, config=cfg.dump())
    (name,) = results
    assert 0 <= results[name]["rank1"] <= 1 and 0 <= results[name]["mAP"] <= 1
    state = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert state["epoch"] == 1 and "loss_mb_id" in state["metrics"]["losses"]
    assert any((tmp_path / "run" / "tensorboard").iterdir())


def test_checkpoint_of_another_model_names_the_differences(
    tiny_opts: list[str], tmp_path: Path
) -> None:
    cfg, engine = _engine(tiny_opts)
    path = ckpt_io.save_checkpoint(tmp_path / "a.pth", model=engine.model, epoch=0)
    _, other = _engine([*tiny_opts, "model.sab", "False"])
    with pytest.raises(ValueError, match=r"unexpected keys .*heads\.sab"):
        ckpt_io.load_checkpoint(path, model=other.model)


def _train_cmd(opts: list[str]) -> list[str]:
    return [sys.executable, "-m", "torchreid_pgflkd.cli.main", "train", "--no-progress",
            "--config", str(CONFIG), *opts]  # fmt: skip


def test_resume_after_sigkill_matches_an_uninterrupted_run(
    tiny_opts: list[str], tmp_path: Path
) -> None:
    """Kill a run mid-epoch with SIGKILL, resume it, and get the uninterrupted run's weights."""
    env = {**os.environ, "TORCHREID_PGFLKD_CACHE": str(tmp_path / "cache")}
    # Prepare the data once so neither run spends its time generating it.
    build.prepare_synthetic(load_config(CONFIG, tiny_opts), progress=False)
    opts = list(tiny_opts)
    opts[opts.index("train.max_epoch") + 1] = "3"
    opts[opts.index("data.workers") + 1] = "1"  # augmentation in a worker process too
    opts += ["data.persistent_workers", "False"]  # bit-exact resume needs fresh workers
    opts += ["train.snapshot_freq", "1"]  # a file per epoch, to kill the run after the first
    ref = [*opts, "train.save_dir", str(tmp_path / "ref")]
    subprocess.run(_train_cmd(ref), env=env, check=True, capture_output=True)

    run = [*opts, "train.save_dir", str(tmp_path / "run")]
    proc = subprocess.Popen(_train_cmd(run), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    first = tmp_path / "run" / "checkpoint_epoch001.pth"
    deadline = time.time() + 300
    while not first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert first.exists(), proc.stderr.read().decode()[-2000:] if proc.stderr else ""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run" / "checkpoint_epoch003.pth").exists(), "killed too late"

    resume = _train_cmd(run)
    resume.insert(resume.index("--config"), "--resume")
    subprocess.run(resume, env=env, check=True, capture_output=True)
    a = torch.load(tmp_path / "ref" / "last.pth", weights_only=True)
    b = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_branches_evaluate_with_pose_for_ablations(tiny_opts: list[str]) -> None:
    _, engine = _engine(tiny_opts)
    results = engine.evaluate_branches()
    assert set(results) == {f"synthetic_occluded/{b}" for b in ("mb", "feb", "sab")}
    assert all(0 <= r["mAP"] <= 1 for r in results.values())
    batch = next(iter(engine.datamanager.pose_test_loaders("synthetic_occluded")["query"]))
    assert batch["pose_maps"].shape[1:] == (7, 4, 2) and batch["pose_maps"].amax() > 0


@pytest.mark.parametrize(
    "opts",
    [["model.num_parts", "4"], ["model.num_parts", "8"], ["model.last_stride", "2"]],
    ids=["4 parts", "8 parts", "last stride 2"],
)
def test_pose_geometry_switches_train(tiny_opts: list[str], opts: list[str]) -> None:
    """The data draws the maps the model expects: parts and stride come from one geometry."""
    cfg, engine = _engine([*tiny_opts, *opts])
    batch = next(iter(engine.train_loader))
    num_parts = cfg.model.num_parts
    fmap = engine.model.feature_maps(batch["img"][:1])["mb"].shape[-2:]
    assert batch["pose_maps"].shape[1:] == (num_parts + 1, *fmap)
    before = engine.forward_backward(batch)["loss"]
    for _ in range(2):
        after = engine.forward_backward(batch)["loss"]
    assert after < before
