"""torchreid-pgflkd: PGFL-KD (pose-guided feature learning with distillation) for torchreid.

Importing this package registers its model names (``pgflkd``, ...) and pose-aware datasets
with torchreid, idempotently; that registration is its only import-time work.
"""

from __future__ import annotations

__version__ = "0.1.0"


def register() -> None:
    """Register our models and datasets with torchreid (safe to call more than once)."""
    from torchreid_pgflkd import compat
    from torchreid_pgflkd.data.datasets import DATASETS
    from torchreid_pgflkd.models import MODEL_FACTORIES

    for name, factory in MODEL_FACTORIES.items():
        compat.register_model(name, factory)
    for name, cls in DATASETS.items():
        compat.register_image_dataset(name, cls)


register()

from torchreid_pgflkd.models import PGFLKD, build_pgflkd, load_model, to_deploy  # noqa: E402

__all__ = ["PGFLKD", "__version__", "build_pgflkd", "load_model", "register", "to_deploy"]
