"""Readers for the keypoint files users have (DESIGN section 4), all to COCO-17 ``(17, 3)``.

- KPR / PifPaf per-image JSON: a list of ``{"keypoints": [[x, y, c] x 17], "is_target": bool}``.
- OpenPose / AlphaPose JSON: ``{"people": [{"pose_keypoints_2d": [x, y, c] x 18}]}`` in
  OpenPose-18 order (BODY_25 is accepted too), converted to COCO-17.
- COCO results JSON from any detector: a list of ``{"image_id", "keypoints": [51], "score"}``
  (a COCO annotation file with ``images`` and ``annotations`` is accepted as well).
- The Market-1501 14-point ``.mat`` (MATLAB v7.3 / HDF5) with its list of image names.
- Any other per-image format through ``register_keypoint_reader(name, suffixes, fn)``, which
  ``read_keypoint_file`` then uses.

Every reader raises :class:`KeypointFormatError` (a ``ValueError``) naming the file and what
is wrong, whatever the content: a string where a number belongs, a ragged list, JSON nested
too deeply for Python's parser.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from torchreid_pgflkd.pose.contract import NUM_KEYPOINTS
from torchreid_pgflkd.pose.keypoints import (
    KeypointFormatError,
    empty_pose,
    sanitize_keypoints,
    select_target,
)

logger = logging.getLogger(__name__)

# COCO-17 joint i is OpenPose-18 joint OPENPOSE18_TO_COCO17[i] (the neck has no COCO joint).
OPENPOSE18_TO_COCO17: tuple[int, ...] = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
# Same for OpenPose BODY_25 (mid-hip at 8 shifts the legs by one).
BODY25_TO_COCO17: tuple[int, ...] = (0, 16, 15, 18, 17, 5, 2, 6, 3, 7, 4, 12, 9, 13, 10, 14, 11)
# COCO-17 joint i is Market 14-point joint MARKET14_TO_COCO17[i]; -1 = no such joint.
# Market order: head-top, neck, R-sho, R-elb, R-wri, L-sho, L-elb, L-wri, R-hip, R-knee,
# R-ank, L-hip, L-knee, L-ank. The nose (0) is approximated from head-top and neck.
MARKET14_TO_COCO17: tuple[int, ...] = (-1, -1, -1, -1, -1, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)
# Where the nose sits on the head-top -> neck segment (0 = head-top, 1 = neck). The 14-point
# skeleton has no face joints; the nose is about half way down from the crown to the neck
# base in a standing person, which is what the part maps need (a head blob, not a face).
MARKET14_NOSE_FRACTION = 0.5


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise KeypointFormatError(f"{path}: not valid JSON ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise KeypointFormatError(f"{path}: not UTF-8 text, so not JSON ({exc})") from exc
    except RecursionError as exc:
        raise KeypointFormatError(f"{path}: JSON nested too deeply to be keypoints") from exc
    except OSError as exc:
        raise KeypointFormatError(f"{path}: cannot be read ({exc})") from exc


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """Turn any error the content of ``path`` causes into a KeypointFormatError naming it."""
    try:
        yield
    except KeypointFormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as exc:
        raise KeypointFormatError(
            f"{path}: unexpected content ({type(exc).__name__}: {exc})"
        ) from exc


def _score(value: Any, where: str) -> float | None:
    """A detection score: a number, or None when absent."""
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise KeypointFormatError(f"{where}: score must be a number, got {value!r}") from exc


def read_kpr_json(path: str | Path, *, image_hw: Sequence[int] | None = None) -> np.ndarray:
    """Read a KPR/PifPaf per-image keypoint JSON -> ``(17, 3)`` pose of the target skeleton.

    Target: the skeleton flagged ``is_target``; else the highest ``score``; else the largest box
    near the centre. An empty list gives an empty pose.
    """
    path = Path(path)
    with _naming(path):
        return _kpr_from_data(_load_json(path), path, image_hw)


def _kpr_from_data(data: Any, path: Path, image_hw: Sequence[int] | None) -> np.ndarray:
    if isinstance(data, dict):
        data = data.get("skeletons", data.get("annotations", [data]))
    if not isinstance(data, list):
        raise KeypointFormatError(
            f"{path}: expected a list of skeletons {{'keypoints': [[x, y, c] x 17], "
            f"'is_target': bool}}, got {type(data).__name__}"
        )
    skeletons, flags, scores = [], [], []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "keypoints" not in item:
            raise KeypointFormatError(f"{path}: skeleton {i} has no 'keypoints' entry")
        try:
            kp = np.asarray(item["keypoints"], dtype=object)
        except ValueError as exc:  # a ragged list
            raise KeypointFormatError(
                f"{path}: skeleton {i} keypoints must be [[x, y, c] x {NUM_KEYPOINTS}] ({exc})"
            ) from exc
        if kp.ndim == 1 and kp.size == NUM_KEYPOINTS * 3:
            kp = kp.reshape(NUM_KEYPOINTS, 3)
        skeletons.append(sanitize_keypoints(kp, source=f"{path} (skeleton {i})", image_hw=image_hw))
        flags.append(item.get("is_target"))
        scores.append(_score(item.get("score"), f"{path} (skeleton {i})"))
    idx = select_target(skeletons, is_target=flags, scores=scores, image_hw=image_hw)
    return empty_pose() if idx is None else skeletons[idx]


def openpose_to_coco17(flat: Sequence[float], *, source: str) -> np.ndarray:
    """OpenPose-18 (or BODY_25) flattened ``[x, y, c] x J`` -> COCO-17 ``(17, 3)``."""
    try:
        arr = np.asarray(flat, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise KeypointFormatError(
            f"{source}: pose_keypoints_2d must be a flat list of numbers [x, y, c, ...] ({exc})"
        ) from exc
    if arr.size == 18 * 3:
        index = OPENPOSE18_TO_COCO17
    elif arr.size == 25 * 3:
        index = BODY25_TO_COCO17
    else:
        raise KeypointFormatError(
            f"{source}: pose_keypoints_2d has {arr.size} values; expected 54 (OpenPose-18) "
            "or 75 (BODY_25)"
        )
    return sanitize_keypoints(arr.reshape(-1, 3)[list(index)], source=source)


def read_openpose_json(path: str | Path, *, image_hw: Sequence[int] | None = None) -> np.ndarray:
    """Read an OpenPose/AlphaPose per-image JSON -> ``(17, 3)`` COCO-17 pose of the target."""
    path = Path(path)
    with _naming(path):
        return _openpose_from_data(_load_json(path), path, image_hw)


def _openpose_from_data(data: Any, path: Path, image_hw: Sequence[int] | None) -> np.ndarray:
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise KeypointFormatError(
            f"{path}: expected {{'people': [{{'pose_keypoints_2d': [...]}}]}} (OpenPose layout)"
        )
    skeletons, scores = [], []
    for i, person in enumerate(data["people"]):
        if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
            raise KeypointFormatError(f"{path}: person {i} has no 'pose_keypoints_2d'")
        kp = openpose_to_coco17(person["pose_keypoints_2d"], source=f"{path} (person {i})")
        if image_hw is not None:
            kp = sanitize_keypoints(kp, source=str(path), image_hw=image_hw)
        skeletons.append(kp)
        scores.append(_score(person.get("score"), f"{path} (person {i})"))
    idx = select_target(skeletons, scores=scores, image_hw=image_hw)
    return empty_pose() if idx is None else skeletons[idx]


def read_coco_results(path: str | Path) -> dict[Any, np.ndarray]:
    """Read COCO keypoint results (or a COCO annotation file) -> ``{image key: (17, 3)}``.

    The key is the ``image_id`` as written (an int or a file name). With an annotation file
    (a dict with ``images`` and ``annotations``), the key is the image's ``file_name`` and the
    visibility flags 1/2 become confidence 1. Several detections of one image: highest score.
    """
    path = Path(path)
    with _naming(path):
        return _coco_from_data(_load_json(path), path)


def _coco_from_data(data: Any, path: Path) -> dict[Any, np.ndarray]:
    id_to_name: dict[Any, str] = {}
    annotation_file = isinstance(data, dict)
    if annotation_file:
        if not isinstance(data.get("annotations"), list):
            raise KeypointFormatError(
                f"{path}: expected a COCO results list or a dict with 'annotations'"
            )
        for j, im in enumerate(data.get("images", [])):
            if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
                raise KeypointFormatError(f"{path}: image {j} lacks 'id' or 'file_name'")
            id_to_name[im["id"]] = im["file_name"]
        data = data["annotations"]
    if not isinstance(data, list):
        raise KeypointFormatError(f"{path}: expected a list of detections, got {type(data)}")
    best: dict[Any, tuple[float, np.ndarray]] = {}
    for i, det in enumerate(data):
        if not isinstance(det, dict) or "image_id" not in det or "keypoints" not in det:
            raise KeypointFormatError(f"{path}: detection {i} lacks 'image_id' or 'keypoints'")
        try:
            kp = np.asarray(det["keypoints"], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise KeypointFormatError(
                f"{path}: detection {i} keypoints must be 51 numbers [x, y, v, ...] ({exc})"
            ) from exc
        if kp.size != NUM_KEYPOINTS * 3:
            raise KeypointFormatError(
                f"{path}: detection {i} has {kp.size} keypoint values, expected 51 (COCO-17)"
            )
        kp = kp.reshape(NUM_KEYPOINTS, 3)
        if annotation_file:
            kp[:, 2] = (kp[:, 2] > 0).astype(np.float64)
        kp = sanitize_keypoints(kp, source=f"{path} (detection {i})")
        key = id_to_name.get(det["image_id"], det["image_id"])
        score = _score(det.get("score", det.get("num_keypoints", 0.0)), f"{path} (detection {i})")
        if key not in best or score > best[key][0]:
            best[key] = (score, kp)
    return {key: kp for key, (_, kp) in best.items()}


def market14_to_coco17(
    joints: np.ndarray, *, image_hw: Sequence[int] = (128, 64), one_based: bool = True
) -> np.ndarray:
    """Market 14-point joints ``(N, 14, 2)`` (x, y) -> COCO-17 ``(N, 17, 3)``.

    1-based pixel indices become pixel-centre coordinates (``x - 0.5``). There is no confidence
    in the source: in-image points get 1.0, others 0. Eyes and ears are missing (conf 0); the
    nose is placed ``MARKET14_NOSE_FRACTION`` of the way from head-top to neck.
    """
    joints = np.asarray(joints, dtype=np.float32)
    xy = joints - 0.5 if one_based else joints.copy()
    h, w = float(image_hw[0]), float(image_hw[1])
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= w) & (xy[..., 1] >= 0) & (xy[..., 1] <= h)
    inside &= np.isfinite(xy).all(axis=-1)
    out = np.zeros((joints.shape[0], NUM_KEYPOINTS, 3), dtype=np.float32)
    for coco, src in enumerate(MARKET14_TO_COCO17):
        if src >= 0:
            out[:, coco, :2] = xy[:, src]
            out[:, coco, 2] = inside[:, src]
    nose_ok = inside[:, 0] & inside[:, 1]
    nose = xy[:, 0] + MARKET14_NOSE_FRACTION * (xy[:, 1] - xy[:, 0])
    out[:, 0, :2] = np.where(nose_ok[:, None], nose, 0.0)
    out[:, 0, 2] = nose_ok
    out[..., :2] *= out[..., 2:3] > 0
    return out


def read_market14_mat(
    mat_path: str | Path,
    names_path: str | Path | None = None,
    *,
    image_hw: Sequence[int] = (128, 64),
) -> dict[str, np.ndarray]:
    """Read the Market-1501 14-point ``.mat`` -> ``{image file name: (17, 3)}``.

    Row i of dataset ``pp`` (N, 28: x in columns 0..13, y in 14..27, 1-based) belongs to the
    i-th name of the names file (``name label`` per line) sorted in ASCII order. Without
    ``names_path``, the single ``*.txt`` next to the ``.mat`` is used.
    """
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("reading the Market 14-point .mat needs h5py: pip install h5py") from exc
    mat_path = Path(mat_path)
    if names_path is None:
        txts = sorted(mat_path.parent.glob("*.txt"))
        if len(txts) != 1:
            raise KeypointFormatError(
                f"{mat_path}: pass the image-name list explicitly; found {len(txts)} .txt files "
                f"next to it ({[t.name for t in txts]})"
            )
        names_path = txts[0]
    names_path = Path(names_path)
    try:
        with h5py.File(mat_path, "r") as f, _naming(mat_path):
            if "pp" not in f:
                raise KeypointFormatError(f"{mat_path}: no dataset 'pp' (found {list(f.keys())})")
            pp = np.asarray(f["pp"], dtype=np.float32)
    except OSError as exc:
        raise KeypointFormatError(f"{mat_path}: not a MATLAB v7.3 (HDF5) file ({exc})") from exc
    if pp.ndim == 2 and pp.shape[0] == 28 and pp.shape[1] != 28:
        pp = pp.T  # MATLAB column-major storage seen from HDF5
    if pp.ndim != 2 or pp.shape[1] != 28:
        raise KeypointFormatError(f"{mat_path}: dataset 'pp' must be (N, 28), got {pp.shape}")
    try:
        lines = [ln.split() for ln in names_path.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as exc:
        raise KeypointFormatError(f"{names_path}: image-name list is not UTF-8 ({exc})") from exc
    names = sorted(parts[0] for parts in lines if parts)
    if len(names) != pp.shape[0]:
        raise KeypointFormatError(
            f"{mat_path}: {pp.shape[0]} keypoint rows but {len(names)} names in {names_path}"
        )
    joints = np.stack([pp[:, :14], pp[:, 14:]], axis=-1)
    poses = market14_to_coco17(joints, image_hw=image_hw)
    return dict(zip(names, poses))


# ---------------------------------------------------------------- reader registry

# A user reader: a file path -> COCO-17 keypoints, (17, 3) or (N, 17, 3) for N people.
KeypointReader = Callable[[Path], Any]


@dataclass(frozen=True)
class _Reader:
    name: str
    suffixes: tuple[str, ...]
    read: Callable[[Path, Sequence[int] | None], np.ndarray]


_READERS: dict[str, _Reader] = {}  # name -> reader, in registration order


def register_keypoint_reader(
    name: str,
    suffixes: str | Sequence[str],
    fn: KeypointReader,
    *,
    replace: bool = False,
) -> None:
    """Teach ``read_keypoint_file`` a per-image keypoint format.

    Args:
        name: the reader's name (in error messages; ``replace=True`` to redefine it).
        suffixes: the file suffixes it reads, e.g. ``".txt"`` or ``(".json",)``.
        fn: ``fn(path) -> keypoints``: COCO-17 ``(17, 3)`` ``[x, y, confidence]`` in pixels
            of the image, or ``(N, 17, 3)`` for N people (the target is then chosen as for
            the built-in formats). Raising ``KeypointFormatError`` (a ``ValueError``) passes
            the file to the next reader of its suffix.

    Readers of a suffix are tried newest first, the built-in JSON reader (KPR / PifPaf and
    OpenPose / AlphaPose) last. Values are checked (``sanitize_keypoints``) whatever ``fn``
    returns; any error names the file.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"keypoint reader name must be a non-empty string, got {name!r}")
    if name in _READERS and not replace:
        raise ValueError(f"keypoint reader {name!r} is already registered (replace=True)")
    if not callable(fn):
        raise TypeError(f"keypoint reader {name!r}: fn must be callable, got {type(fn).__name__}")
    suffixes = (suffixes,) if isinstance(suffixes, str) else tuple(suffixes)
    bad = [x for x in suffixes if not (isinstance(x, str) and x.startswith(".") and len(x) > 1)]
    if not suffixes or bad:
        raise ValueError(f"keypoint reader {name!r}: suffixes must look like '.txt', got {bad}")
    _READERS.pop(name, None)
    _READERS[name] = _Reader(name, tuple(x.lower() for x in suffixes), _user_reader(fn))


def unregister_keypoint_reader(name: str) -> None:
    """Remove a reader added by ``register_keypoint_reader`` (built-ins stay)."""
    if name == BUILTIN_JSON_READER:
        raise ValueError(f"{BUILTIN_JSON_READER!r} is built in and cannot be removed")
    _READERS.pop(name, None)


def keypoint_readers() -> dict[str, tuple[str, ...]]:
    """Registered reader name -> its suffixes."""
    return {r.name: r.suffixes for r in _READERS.values()}


def keypoint_suffixes() -> tuple[str, ...]:
    """Every suffix some reader reads, e.g. ``('.json',)``."""
    return tuple(dict.fromkeys(x for r in _READERS.values() for x in r.suffixes))


def _user_reader(fn: KeypointReader) -> Callable[[Path, Sequence[int] | None], np.ndarray]:
    def read(path: Path, image_hw: Sequence[int] | None) -> np.ndarray:
        with _naming(path):
            poses = np.asarray(fn(path), dtype=np.float64)
            if poses.ndim == 2:
                return sanitize_keypoints(poses, source=str(path), image_hw=image_hw)
            if poses.ndim != 3 or poses.shape[1:] != (NUM_KEYPOINTS, 3):
                raise KeypointFormatError(
                    f"{path}: the reader returned shape {poses.shape}; expected COCO-17 "
                    f"({NUM_KEYPOINTS}, 3) or (N, {NUM_KEYPOINTS}, 3)"
                )
            skeletons = [
                sanitize_keypoints(p, source=f"{path} (person {i})", image_hw=image_hw)
                for i, p in enumerate(poses)
            ]
            idx = select_target(skeletons, image_hw=image_hw)
            return empty_pose() if idx is None else skeletons[idx]

    return read


def _read_builtin_json(path: Path, image_hw: Sequence[int] | None) -> np.ndarray:
    with _naming(path):
        data = _load_json(path)
        if isinstance(data, dict) and "people" in data:
            return _openpose_from_data(data, path, image_hw)
        return _kpr_from_data(data, path, image_hw)


BUILTIN_JSON_READER = "kpr_openpose_json"
_READERS[BUILTIN_JSON_READER] = _Reader(BUILTIN_JSON_READER, (".json",), _read_builtin_json)


def read_keypoint_file(path: str | Path, *, image_hw: Sequence[int] | None = None) -> np.ndarray:
    """Read one per-image keypoint file -> ``(17, 3)`` COCO-17 pose of the target person.

    JSON in the KPR / PifPaf list or OpenPose / AlphaPose layout out of the box; other formats
    through ``register_keypoint_reader``. A file whose suffix no reader claims is read as JSON.
    """
    path = Path(path)
    readers = [r for r in reversed(_READERS.values()) if path.suffix.lower() in r.suffixes]
    readers = readers or [_READERS[BUILTIN_JSON_READER]]
    errors: list[tuple[str, KeypointFormatError]] = []
    for reader in readers:
        try:
            return reader.read(path, image_hw)
        except KeypointFormatError as exc:
            errors.append((reader.name, exc))
    if len(errors) == 1:
        raise errors[0][1]
    raise KeypointFormatError(
        f"{path}: no keypoint reader could read it: "
        + "; ".join(f"[{name}] {exc}" for name, exc in errors)
    )
