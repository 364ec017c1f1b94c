"""The controls that ask whether *pose* causes the gain: each trains, and each does what it says."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchreid_pgflkd.config import build, load_config
from torchreid_pgflkd.config.experiment import variant_overrides
from torchreid_pgflkd.data.loaders import ShufflePoseCollate
from torchreid_pgflkd.models import build_pgflkd
from torchreid_pgflkd.pose.maps import PriorMapper

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


def test_stripes_are_horizontal_bands_and_the_foreground_a_centred_prior() -> None:
    maps = PriorMapper(num_parts=4, kind="stripes")(torch.zeros(17, 3), image_hw=(128, 64))
    assert maps.shape == (5, 8, 4)
    for p in range(4):  # stripe p covers rows 2p and 2p + 1, the whole width
        assert torch.equal(maps[p].sum(dim=1), torch.tensor([4.0 if r // 2 == p else 0.0
                                                              for r in range(8)]))  # fmt: skip
    fg = maps[-1]
    assert fg[3:5, 1:3].min() > fg[0, 0] and fg.max() <= 1
    empty = PriorMapper(num_parts=6, kind="empty")(torch.rand(2, 17, 3), image_hw=(128, 64))
    assert empty.shape == (2, 7, 8, 4) and not empty.any()


def test_shuffled_pose_gives_every_image_another_images_maps() -> None:
    torch.manual_seed(0)
    items = [{"pose_maps": torch.full((7, 2, 2), float(i)), "keypoints": torch.full((17, 3), i),
              "pid": i} for i in range(8)]  # fmt: skip
    for _ in range(20):
        batch = ShufflePoseCollate()(items)
        owner = batch["pose_maps"][:, 0, 0, 0].long()
        assert sorted(owner.tolist()) == list(range(8))  # a permutation...
        assert not (owner == torch.arange(8)).any()  # ...with no fixed point
        assert torch.equal(batch["keypoints"][:, 0, 0].long(), owner)


def test_independent_branches_start_from_different_weights() -> None:
    torch.manual_seed(0)
    copy = build_pgflkd(num_classes=4, backbone="resnet_mini", pretrained=False)
    indep = build_pgflkd(num_classes=4, backbone="resnet_mini", pretrained=False,
                         branch_init="independent")  # fmt: skip
    first = next(iter(copy.layer4["mb"].parameters()))
    assert torch.equal(first, next(iter(copy.layer4["feb"].parameters())))
    first = next(iter(indep.layer4["mb"].parameters()))
    assert not torch.equal(first, next(iter(indep.layer4["feb"].parameters())))
    with pytest.raises(ValueError, match="branch_init"):
        build_pgflkd(num_classes=4, backbone="resnet_mini", branch_init="random")


@pytest.mark.parametrize(
    "variant", ["stripes", "shuffled_pose", "mutual_no_pose", "pgflkd+occ", "sab_drop_invisible"]
)
def test_control_variants_train(tiny_opts: list[str], variant: str) -> None:
    switches = variant_overrides(load_config(CONFIG, tiny_opts), variant)
    cfg = build.prepare_synthetic(load_config(CONFIG, [*tiny_opts, *switches]), progress=False)
    engine = build.build_engine(cfg, build.build_datamanager(cfg), progress=False)
    batch = next(iter(engine.train_loader))
    maps = batch["pose_maps"]
    if variant == "mutual_no_pose":
        assert not maps.any()
    elif variant == "stripes":
        assert torch.equal(maps, maps[:1].expand_as(maps))  # the same prior for every image
    summary = engine.forward_backward(batch)
    assert torch.isfinite(torch.tensor(summary["loss"]))
    if variant == "mutual_no_pose":  # no pose: nothing to align, nothing to focus on
        assert summary.get("loss_sab_align", 0.0) == 0.0
