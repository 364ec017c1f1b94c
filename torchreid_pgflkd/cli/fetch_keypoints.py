"""``pgflkd fetch-keypoints DATASET --root R``: KPR's published keypoints, where datasets read them.

KPR (Somers et al., ECCV 2024) publishes PifPaf keypoints of Market-1501, Occluded-Duke,
Occluded-REID and Partial-REID in a public Google Drive folder (``KPR_DRIVE_URL``), one
sub-folder per dataset. This command lists that sub-folder with gdown, downloads its keypoint
files (not the human-parsing masks beside them), unpacks any zip, and copies each split's
folder of per-image JSON to ``<dataset folder>/external_annotation/
pifpaf_keypoints_pifpaf_maskrcnn_filtering/<split folder>/``: the first place the pose-aware
datasets look (``data.keypoint_source``). The dataset folder is the one the dataset finds
under ``--root``; when the images are not there yet, ``<root>/<KPR's folder name>``.

Offline, it fails naming the Drive folder to download by hand and where its files go;
``--from PATH`` then installs that download (a folder or a zip) the same way.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torchreid_pgflkd.data.keypoint_source import KPR_SUBDIR

HELP = "download KPR's PifPaf keypoints of a benchmark into the layout the datasets read"
KPR_DRIVE_FOLDER_ID = "15_RdnS1nr3iAYcnCibXmbT1LxU2n8PHZ"
KPR_DRIVE_URL = f"https://drive.google.com/drive/folders/{KPR_DRIVE_FOLDER_ID}"
logger = logging.getLogger(__name__)


class KeypointDownloadError(RuntimeError):
    """KPR's keypoints could not be downloaded; the message says what to fetch by hand."""


@dataclass(frozen=True)
class KprDataset:
    drive_folder: str  # its sub-folder of the Drive folder
    default_dir: str  # its folder under root when the dataset is not there yet (KPR's name)
    splits: tuple[str, ...]  # split folders the keypoints come in (the image folders' names)


_MARKET_SPLITS = ("bounding_box_train", "bounding_box_test", "query")
_QUERY_GALLERY_SPLITS = ("occluded_body_images", "partial_body_images", "whole_body_images")
# Our registered dataset name -> where KPR has its keypoints.
KPR_DATASETS: dict[str, KprDataset] = {
    "market1501_pose": KprDataset("Market-1501", "Market-1501-v15.09.15", _MARKET_SPLITS),
    "occluded_duke": KprDataset("Occluded-Duke", "Occluded_Duke", _MARKET_SPLITS),
    "occluded_reid": KprDataset("Occluded-REID", "Occluded_REID", _QUERY_GALLERY_SPLITS),
    "partial_reid": KprDataset("Partial-REID", "Partial_REID", _QUERY_GALLERY_SPLITS),
}
# Other names users type for the same datasets.
ALIASES: dict[str, str] = {
    "market1501": "market1501_pose",
    "market": "market1501_pose",
    "occludedduke": "occluded_duke",
    "occludedreid": "occluded_reid",
    "partialreid": "partial_reid",
    "partial_reid_occluded": "partial_reid",
    "partial_reid_partial": "partial_reid",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help=f"one of {sorted(KPR_DATASETS)} (or KPR's names)")
    parser.add_argument("--root", default="reid-data", help="data root holding the datasets")
    parser.add_argument(
        "--from",
        dest="source",
        default="",
        help="install a folder or zip downloaded by hand instead of downloading",
    )


def run(args: argparse.Namespace) -> int:
    name = resolve_name(args.dataset)
    target = keypoint_dir(name, args.root)
    if args.source:
        count = install_keypoints(Path(args.source), target, KPR_DATASETS[name])
    else:
        count = fetch_keypoints(name, args.root)
    print(f"{count} keypoint files of {name} in {target}")
    return 0


def resolve_name(dataset: str) -> str:
    """Our dataset name for ``dataset`` (ours, KPR's Drive folder name or a common alias)."""
    key = dataset.lower().replace("-", "").replace(" ", "")
    name = ALIASES.get(key, key)
    if name in KPR_DATASETS:
        return name
    raise ValueError(
        f"KPR publishes keypoints for {sorted(KPR_DATASETS)} only, not {dataset!r}; for other "
        "data run `pgflkd keypoints --images DIR --output DIR`"
    )


def keypoint_dir(name: str, root: str | Path) -> Path:
    """Where dataset ``name`` under ``root`` reads KPR keypoints: ``<dataset>/`` + KPR_SUBDIR."""
    from torchreid_pgflkd.data.datamanager import build_dataset

    try:
        dataset_dir = Path(build_dataset(name, root=str(root), mode="query").dataset_dir)
    except FileNotFoundError:
        dataset_dir = Path(root) / KPR_DATASETS[name].default_dir
        logger.warning(
            "%s is not under %s yet: keypoints go to %s, where its images must go too",
            name,
            root,
            dataset_dir,
        )
    return dataset_dir / KPR_SUBDIR


def fetch_keypoints(name: str, root: str | Path) -> int:
    """Download KPR's keypoints of ``name`` into its dataset folder under ``root``; returns the
    number of keypoint files installed. ``KeypointDownloadError`` when offline."""
    spec = KPR_DATASETS[name]
    target = keypoint_dir(name, root)
    Path(root).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".kpr-", dir=root) as tmp:
        try:
            download_dir = _download(spec, Path(tmp))
        except KeypointDownloadError:
            raise
        except Exception as exc:  # gdown fails offline in many ways (requests, its own types)
            raise KeypointDownloadError(
                f"could not download KPR's keypoints of {name} ({type(exc).__name__}: {exc}). "
                f"Download the sub-folder '{spec.drive_folder}' of {KPR_DRIVE_URL} by hand (the "
                f"keypoint files, not the masks) and run `pgflkd fetch-keypoints {name} --root "
                f"{root} --from <that folder or zip>`, or put its per-split folders "
                f"({', '.join(spec.splits)}) of *_keypoints.json files in {target}/"
            ) from exc
        return install_keypoints(download_dir, target, spec)


def _download(spec: KprDataset, tmp: Path) -> Path:
    """List the Drive folder, download ``spec``'s keypoint files under ``tmp``; the folder."""
    try:
        import gdown
    except ImportError as exc:
        raise ImportError("downloading KPR's keypoints needs gdown: pip install gdown") from exc
    listing = gdown.download_folder(
        id=KPR_DRIVE_FOLDER_ID, output=str(tmp), quiet=True, skip_download=True
    )
    mine = [f for f in listing or [] if _top_folder(f.path) == _norm(spec.drive_folder)]
    if not mine:
        found = sorted({_top_folder(f.path) for f in listing or []})
        raise KeypointDownloadError(
            f"{KPR_DRIVE_URL} has no sub-folder {spec.drive_folder!r} (found {found})"
        )
    wanted = [f for f in mine if "mask" not in f.path.lower()] or mine
    for f in wanted:
        out = tmp / f.path
        out.parent.mkdir(parents=True, exist_ok=True)
        if not gdown.download(id=f.id, output=str(out), quiet=False):
            raise OSError(f"gdown returned nothing for {f.path}")
    return tmp


def _top_folder(path: str) -> str:
    return _norm(Path(path).parts[0]) if Path(path).parts else ""


def _norm(name: str) -> str:
    return name.lower().replace("-", "").replace("_", "").replace(" ", "")


def install_keypoints(source: Path, target: Path, spec: KprDataset) -> int:
    """Copy the split folders of keypoint JSON found in ``source`` (a folder or a zip; zips
    inside are unpacked) to ``target/<split>/``; returns the number of JSON files there."""
    if not source.exists():
        raise FileNotFoundError(f"--from {source}: no such file or folder")
    with tempfile.TemporaryDirectory(prefix=".kpr-unpack-") as tmp:
        if source.is_file():
            _unzip(source, Path(tmp))
            source = Path(tmp)
        else:
            for archive in sorted(source.rglob("*.zip")):
                _unzip(archive, Path(tmp) / archive.stem)
        roots = [source, Path(tmp)]
        split_dirs = _find_splits(roots, spec.splits)
        if not split_dirs:
            raise FileNotFoundError(
                f"no keypoint folders of {spec.drive_folder} in {source}: expected folders named "
                f"{list(spec.splits)} holding *_keypoints.json (e.g. under {KPR_SUBDIR})"
            )
        count = 0
        for split, folder in split_dirs.items():
            if folder.resolve() != (target / split).resolve():
                shutil.copytree(folder, target / split, dirs_exist_ok=True)
            count += sum(1 for _ in (target / split).rglob("*.json"))
            logger.info("keypoints of %s copied to %s", split, target / split)
    return count


def _unzip(archive: Path, dest: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(dest)  # member names are sanitised (no absolute paths, no '..')
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{archive} is not a zip file ({exc})") from exc


def _find_splits(roots: list[Path], splits: tuple[str, ...]) -> dict[str, Path]:
    """``{split: folder}`` of the split folders holding JSON, preferring ones under a folder
    named like KPR's (``pifpaf_keypoints_pifpaf_maskrcnn_filtering``)."""
    found: dict[str, Path] = {}
    candidates: list[Any] = []
    for root in roots:
        candidates += sorted(p for p in root.rglob("*") if p.is_dir() and p.name in splits)
    candidates.sort(key=lambda p: (KPR_SUBDIR.name not in p.parts, len(p.parts)))
    for folder in candidates:
        if folder.name not in found and next(folder.rglob("*.json"), None) is not None:
            found[folder.name] = folder
    return found
