"""The compat layer on the installed torchreid."""

from __future__ import annotations

import builtins

import pytest

from torchreid_pgflkd import compat


def test_installed_layout_is_detected_and_submodules_resolve() -> None:
    import torchreid

    expected = "pypi" if hasattr(torchreid, "reid") else "github"
    assert compat.layout() == expected
    assert callable(compat.submodule("models").build_model)
    assert compat.engine_base().__name__ == "Engine"
    assert compat.random_identity_sampler().__name__ == "RandomIdentitySampler"
    assert compat.image_dataset_base().__name__ == "ImageDataset"
    assert callable(compat.torchreid_evaluate_rank())


def test_unknown_submodule_names_both_layouts() -> None:
    with pytest.raises(ImportError, match="torchreid.reid.nope.*torchreid.nope"):
        compat.submodule("nope")


def test_broken_torchvision_gets_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "torchvision":
            raise RuntimeError("operator torchvision::nms does not exist")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(
        ImportError, match=r"not built for the installed torch.*torchvision==0.29.0"
    ):
        compat.check_torchvision()


def test_dataset_registration_is_idempotent() -> None:
    class Dummy:
        __module__ = "torchreid_pgflkd.tests"

    compat.register_image_dataset("pgflkd_dummy_for_test", Dummy)
    compat.register_image_dataset("pgflkd_dummy_for_test", Dummy)
    assert compat.image_dataset_registry()["pgflkd_dummy_for_test"] is Dummy
    with pytest.raises(ValueError, match="already taken"):
        compat.register_image_dataset("market1501", Dummy)
