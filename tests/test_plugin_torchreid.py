"""The plugin in a torchreid user's hands: torchreid's engines, build_model's loss, feature
maps, the README's training example, and PGFLKDEngine.run with torchreid's arguments."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
import torch

import torchreid_pgflkd  # noqa: F401  (registers the models)
from torchreid_pgflkd import compat
from torchreid_pgflkd.engine import PGFLKDEngine
from torchreid_pgflkd.models import PGFLKD, BNNeckReID

README = Path(__file__).resolve().parents[1] / "README.md"


def _build(name: str, loss: str = "triplet", **kw):
    return compat.build_torchreid_model(name, num_classes=4, loss=loss, pretrained=False, **kw)


@pytest.mark.parametrize("engine_name", ["ImageSoftmaxEngine", "ImageTripletEngine"])
def test_torchreid_engines_are_told_the_drop_in_pair(engine_name: str) -> None:
    model = _build("pgflkd_resnet_mini", loss="softmax" if "Softmax" in engine_name else "triplet")
    datamanager = types.SimpleNamespace(train_loader=None, test_loader={}, num_train_pids=4)
    engine_cls = getattr(compat.submodule("engine"), engine_name)
    engine = engine_cls(datamanager, model, torch.optim.Adam(model.parameters()), use_gpu=False)
    batch = {"img": torch.randn(4, 3, 64, 32), "pid": torch.tensor([0, 0, 1, 1])}
    with pytest.raises(ValueError) as info:
        engine.forward_backward(batch)
    message = str(info.value)
    for needed in ("PoseDataManager", "PGFLKDEngine", "pgflkd train", "model.eval()"):
        assert needed in message


def test_build_model_loss_is_honoured_or_refused() -> None:
    for loss in ("triplet", "softmax"):
        assert _build("pgflkd_resnet_mini", loss=loss).loss == loss
    with pytest.raises(ValueError, match=r"'triplet', 'softmax'.*'htri'"):
        _build("pgflkd_resnet_mini", loss="htri")

    images = torch.randn(4, 3, 64, 32)
    softmax = _build("bnneck_resnet18", loss="softmax").train()
    assert isinstance(softmax, BNNeckReID) and softmax(images).shape == (4, 4)
    logits, feat = _build("bnneck_resnet18", loss="triplet").train()(images)
    assert logits.shape == (4, 4) and feat.shape == (4, 512)
    with pytest.raises(ValueError, match="'softmax', 'triplet'"):
        _build("bnneck_resnet18", loss="htri")


def test_softmax_model_trains_without_the_triplet_terms() -> None:
    datamanager = types.SimpleNamespace(train_loader=None, test_loader={})
    for loss, tri in (("softmax", 0.0), ("triplet", 1.0)):
        model = _build("pgflkd_resnet_mini", loss=loss)
        engine = PGFLKDEngine(datamanager, model, None, device="cpu", progress=False)
        engine._honour_model_loss()  # what run() does first
        assert engine.loss_settings.weights.tri == tri


def test_return_featuremaps_gives_the_main_branch_map() -> None:
    model = _build("pgflkd_resnet_mini").eval()
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        fmap = model(images, return_featuremaps=True)
        assert fmap.shape == (2, 256, 4, 2)  # (B, D, h, w), stride 16
        torch.testing.assert_close(fmap, model.feature_maps(images)["mb"])
        assert _build("bnneck_resnet18").eval()(images, return_featuremaps=True).shape[1] == 512


# ------------------------------------------------------------- the README's example


def _readme_training_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Training with torchreid's API") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's training example, shrunk to the tiny benchmark and one epoch."""
    root = tmp_path_factory.mktemp("readme")
    code = _readme_training_example()
    tiny = {
        '"reid-data"': repr(str(root / "data")),
        "seed=0)": "seed=0, num_train_ids=8, images_per_id=4, num_test_ids=4, progress=False)",
        "height=128,": "height=64, num_workers=0,",
        "width=64,": "width=32,",
        "batch_size_train=32,": "batch_size_train=8,",
        "num_instances=4,": "num_instances=2,",
        "pretrained=True": "pretrained=False",
        '"log/pgflkd_resnet18"': repr(str(root / "log")),
        "max_epoch=30, eval_freq=10": "max_epoch=1, eval_freq=-1",
    }
    for old, new in tiny.items():
        assert old in code, f"the README example changed: {old!r} is gone; update this test"
        code = code.replace(old, new)
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    return {**namespace, "root": root}


def test_readme_training_example_runs(readme_run: dict) -> None:
    assert (
        isinstance(readme_run["model"], PGFLKD) and readme_run["model"].backbone_name == "resnet18"
    )
    results = readme_run["results"]["synthetic_occluded"]
    assert 0 <= results["rank1"] <= 1 and 0 <= results["mAP"] <= 1
    assert (readme_run["root"] / "log" / "last.pth").is_file()


def test_run_takes_torchreids_arguments(readme_run: dict, tmp_path: Path) -> None:
    engine = readme_run["engine"]
    results = engine.run(
        save_dir=str(tmp_path),
        max_epoch=1,
        test_only=True,
        visrank=True,
        visrank_topk=3,
        dist_metric="cosine",
        normalize_feature=True,
        print_freq=10,
        ranks=[1, 5],
    )
    assert engine.print_freq == 10 and set(results) == {"synthetic_occluded"}
    ranked = sorted((tmp_path / "visrank_synthetic_occluded").iterdir())
    num_queries = len(engine.datamanager.fetch_test_loaders("synthetic_occluded")[0])
    assert len(ranked) == num_queries  # torchreid's layout: one image per query
    assert (tmp_path / "ranked_synthetic_occluded.png").is_file()  # our summary
    assert not (tmp_path / "last.pth").exists()  # test only: nothing trained or saved
    with pytest.raises(ValueError, match="CUHK03"):
        engine.run(save_dir=str(tmp_path), test_only=True, use_metric_cuhk03=True)


def test_fixbase_trains_only_the_open_layers_then_restores(readme_run: dict) -> None:
    engine = readme_run["engine"]
    model = engine.model
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    engine.run(save_dir=str(readme_run["root"] / "fixbase"), max_epoch=1, fixbase_epoch=1,
               open_layers="heads")  # fmt: skip
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and all(n.startswith("heads.") for n in moved)
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    with pytest.raises(ValueError, match="not modules of the model"):
        engine.run(save_dir=str(readme_run["root"] / "fixbase"), max_epoch=1, fixbase_epoch=1,
                   open_layers="classifier")  # fmt: skip
