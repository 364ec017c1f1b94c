"""ImageNet weights: local file, environment variable, hub cache, and a clear error offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from torchreid_pgflkd import compat
from torchreid_pgflkd.models import backbone as bb
from torchreid_pgflkd.models import build_pgflkd


@pytest.fixture
def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.delenv(bb.PRETRAINED_ENV, raising=False)
    monkeypatch.delenv(bb.OFFLINE_ENV, raising=False)
    return tmp_path / "hub" / "checkpoints"


def _fake_imagenet_file(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    state = compat.check_torchvision().models.resnet18(weights=None).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def test_offline_without_weights_fails_naming_file_and_place(
    empty_hub: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(url: str, dst: str, **kw: object) -> None:
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(bb.PretrainedWeightsUnavailable) as err:
        build_pgflkd(num_classes=3, backbone="resnet18", pretrained=True)
    msg = str(err.value)
    assert "resnet18-f37072fd.pth" in msg and str(empty_hub) in msg
    assert bb.PRETRAINED_ENV in msg and "download failed" in msg

    monkeypatch.setenv(bb.OFFLINE_ENV, "1")
    with pytest.raises(bb.PretrainedWeightsUnavailable, match="PGFLKD_OFFLINE"):
        compat.build_torchreid_model("pgflkd_resnet18", num_classes=3, pretrained=True)


def test_missing_explicit_file_is_an_error_not_random_weights(empty_hub: Path) -> None:
    with pytest.raises(bb.PretrainedWeightsUnavailable, match="not found at"):
        build_pgflkd(num_classes=3, backbone="resnet18", pretrained_path="/nonexistent/w.pth")


@pytest.mark.parametrize("source", ["argument", "environment", "hub cache"])
def test_weights_load_from_each_source(
    source: str, empty_hub: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if source == "hub cache":
        path = empty_hub / "resnet18-f37072fd.pth"
    else:
        path = tmp_path / "weights" / "r18.pth"
    state = _fake_imagenet_file(path)
    kwargs: dict = {"pretrained": True}
    if source == "argument":
        kwargs["pretrained_path"] = str(path)
    elif source == "environment":
        monkeypatch.setenv(bb.PRETRAINED_ENV, str(path))
    model = build_pgflkd(num_classes=3, backbone="resnet18", **kwargs)
    torch.testing.assert_close(model.stem[0].weight, state["conv1.weight"])
    # Every branch's layer4 starts from the same ImageNet weights.
    for name in model.branch_names:
        torch.testing.assert_close(
            model.layer4[name][1].conv1.weight, state["layer4.1.conv1.weight"]
        )


def test_a_file_of_the_wrong_architecture_is_rejected(empty_hub: Path, tmp_path: Path) -> None:
    path = tmp_path / "w.pth"
    torch.save({"something.else": torch.zeros(1)}, path)
    with pytest.raises(bb.PretrainedWeightsUnavailable, match="not a resnet18"):
        build_pgflkd(num_classes=3, backbone="resnet18", pretrained_path=path)
