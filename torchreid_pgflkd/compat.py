"""The one module that touches torchreid's internals.

torchreid exists in two layouts: the PyPI package ``torchreid==0.2.5`` ships deep-person-reid
1.4.0 under ``torchreid.reid.*`` (its top level only re-exports attributes, so
``import torchreid.models`` fails), while a GitHub install has ``torchreid.*``. Everything in
this package reaches torchreid through the helpers below, so supporting a new layout or
version means editing this file only.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

logger = logging.getLogger(__name__)

# The pair this package is tested with (constraints.txt); setup.py accepts a range.
TESTED_TORCH_PAIR = ("2.14.0", "0.29.0")
_TORCH_PAIR_HINT = (
    "torchvision must be the build made for your torch release. Install the matching "
    "torchvision for your torch (pytorch.org lists the pairs), or the tested pair: pip "
    f"install 'torch=={TESTED_TORCH_PAIR[0]}' 'torchvision=={TESTED_TORCH_PAIR[1]}' (from a "
    'clone: pip install -e ".[dev]" -c constraints.txt).'
)


def check_torchvision() -> ModuleType:
    """Import torchvision, turning a torch/torchvision build mismatch into an actionable error."""
    try:
        import torchvision
    except (ImportError, OSError, RuntimeError) as exc:
        import torch

        raise ImportError(
            f"torchvision failed to import ({type(exc).__name__}: {exc}). This happens when "
            f"torchvision was not built for the installed torch {torch.__version__}. "
            + _TORCH_PAIR_HINT
        ) from exc
    return torchvision


def _torchreid() -> ModuleType:
    check_torchvision()
    try:
        with warnings.catch_warnings():
            # The PyPI build has no Cython ranking; we ship our own fast evaluator instead.
            warnings.filterwarnings("ignore", message="Cython evaluation", category=UserWarning)
            import torchreid
    except ImportError as exc:
        raise ImportError(
            f"torchreid could not be imported ({exc}). Install it with: pip install "
            "torchreid==0.2.5 scipy opencv-python-headless tensorboard gdown matplotlib"
        ) from exc
    return torchreid


def layout() -> str:
    """``'pypi'`` when torchreid lives under ``torchreid.reid``, ``'github'`` otherwise."""
    torchreid = _torchreid()
    try:
        importlib.import_module("torchreid.reid")
    except ImportError:
        return "github"
    return "pypi" if hasattr(torchreid, "reid") else "github"


def submodule(name: str) -> ModuleType:
    """Import a torchreid submodule by its layout-free name, e.g. ``'models'``, ``'data.datasets'``.

    Tries ``torchreid.reid.<name>`` (PyPI) then ``torchreid.<name>`` (GitHub).
    """
    _torchreid()
    errors = []
    for prefix in ("torchreid.reid.", "torchreid."):
        try:
            return importlib.import_module(prefix + name)
        except ImportError as exc:
            errors.append(f"{prefix}{name}: {exc}")
    raise ImportError(
        f"torchreid has no module {name!r} in either known layout ({'; '.join(errors)})"
    )


def _module_dict(module: ModuleType, attr: str) -> dict:
    # Module-level names that start with two underscores are not mangled at module scope,
    # so vars() reaches them under their plain name.
    table = vars(module).get(attr)
    if not isinstance(table, dict):
        raise RuntimeError(
            f"torchreid module {module.__name__} has no registry dict {attr!r}; this torchreid "
            "version is not supported (tested: 0.2.5 on PyPI, deep-person-reid 1.4.0)."
        )
    return table


def model_factory() -> dict[str, Callable[..., Any]]:
    """torchreid's name -> constructor table used by ``build_model``."""
    return _module_dict(submodule("models"), "__model_factory")


def register_model(name: str, factory: Callable[..., Any]) -> None:
    """Register ``factory`` under ``name`` for ``torchreid.models.build_model``; idempotent."""
    table = model_factory()
    existing = table.get(name)
    if existing is not None and existing is not factory:
        if getattr(existing, "__module__", "").startswith("torchreid_pgflkd"):
            logger.debug("re-registering model %s", name)
        else:
            raise ValueError(f"model name {name!r} is already taken by torchreid ({existing})")
    table[name] = factory


def image_dataset_registry() -> dict[str, type]:
    return _module_dict(submodule("data.datasets"), "__image_datasets")


def register_image_dataset(name: str, cls: type) -> None:
    """Register an image dataset class with torchreid; idempotent for our own classes.

    torchreid's public ``register_image_dataset`` refuses a name it has seen, which breaks a
    second import (e.g. after ``importlib.reload``); we replace our own entries instead.
    """
    table = image_dataset_registry()
    existing = table.get(name)
    if existing is not None and existing is not cls:
        if not getattr(existing, "__module__", "").startswith("torchreid_pgflkd"):
            raise ValueError(f"dataset name {name!r} is already taken by torchreid ({existing})")
    table[name] = cls


def image_dataset_base() -> type:
    """torchreid's ``ImageDataset`` base class."""
    return submodule("data.datasets.dataset").ImageDataset


def engine_base() -> type:
    """torchreid's ``Engine`` base class."""
    return submodule("engine.engine").Engine


def triplet_engine() -> type:
    return submodule("engine").ImageTripletEngine


def random_identity_sampler() -> type:
    return submodule("data.sampler").RandomIdentitySampler


def visualize_ranked_results() -> Callable[..., Any]:
    """torchreid's ``visualize_ranked_results`` (``save_dir/visrank_<dataset>/`` images)."""
    return submodule("utils").visualize_ranked_results


def load_pretrained_weights() -> Callable[..., Any]:
    """torchreid's ``load_pretrained_weights(model, path)`` (keeps what fits, drops the rest)."""
    return submodule("utils").load_pretrained_weights


def feature_extractor() -> type:
    """torchreid's ``FeatureExtractor``."""
    return submodule("utils").FeatureExtractor


def torchreid_evaluate_rank() -> Callable[..., Any]:
    """torchreid's own ``evaluate_rank`` (Python path on PyPI, where no Cython is shipped)."""
    return submodule("metrics.rank").evaluate_rank


def build_torchreid_model(name: str, num_classes: int, loss: str = "softmax", **kwargs: Any):
    """``torchreid.models.build_model`` through whichever layout is installed."""
    return submodule("models").build_model(name, num_classes=num_classes, loss=loss, **kwargs)
