"""The embedded benchmark as a registered dataset (Market-1501 layout, KPR-layout keypoints)."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from torchreid_pgflkd.data.datasets.market import MarketLayoutDataset


class SyntheticOccluded(MarketLayoutDataset):
    """A folder written by ``torchreid_pgflkd.data.synthetic.generate``.

    Pass ``dataset_dir=`` (the folder name ``generate`` returns) unless ``root`` holds exactly
    one generated benchmark; ``generate`` itself is never called from here, so constructing
    the dataset does no hidden work.
    """

    dataset_dir_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, root: str = "", *, dataset_dir: str | None = None, **kwargs: Any) -> None:
        if not dataset_dir:
            from pathlib import Path

            found = sorted(p.name for p in Path(root).expanduser().glob("pgflkd_synthetic_*"))
            if len(found) != 1:
                raise ValueError(
                    f"synthetic_occluded: pass dataset_dir= (found {len(found)} generated "
                    f"benchmarks under {root}: {found[:5]}); generate one with "
                    "torchreid_pgflkd.data.synthetic.generate(root)"
                )
            dataset_dir = found[0]
        super().__init__(root, dataset_dir=dataset_dir, **kwargs)

    def query_groups(self) -> dict[str, str]:
        """Query file name -> the kind of occluder over it (``below`` | ``side`` | ``person``,
        ``none`` for an unoccluded query), from the benchmark's ``meta.json``."""
        from torchreid_pgflkd.data.synthetic.generate import META_FILE

        path = self.dataset_dir / META_FILE
        try:
            entries = json.loads(path.read_text())["images"]["query"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path}: cannot read the query occluders ({e})") from e
        return {e["file"]: e.get("occluder_group") or "none" for e in entries}
