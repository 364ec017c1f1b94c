"""Keypoints for datasets that have none: torchvision's Keypoint R-CNN over a folder of images.

Writes one KPR-style JSON per image, ``<output>/<relative dir>/<image file name>_keypoints.json``:
a list of skeletons ``{"keypoints": [[x, y, c] x 17], "is_target": bool, "score", "bbox"}``,
the target first (highest detection score). ``c`` is the sigmoid of torchvision's keypoint
score (a heatmap logit), so it lies in (0, 1) and compares with the 0.2 visibility threshold.
Resumable: images whose file exists are skipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from torchreid_pgflkd.compat import check_torchvision
from torchreid_pgflkd.pose.keypoints import sanitize_keypoints, select_target
from torchreid_pgflkd.utils.io import atomic_write_text

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")
OUTPUT_SUFFIX = "_keypoints.json"


def _weights_enum() -> Any:
    check_torchvision()
    from torchvision.models.detection import KeypointRCNN_ResNet50_FPN_Weights

    return KeypointRCNN_ResNet50_FPN_Weights.DEFAULT


def build_keypoint_rcnn(
    *,
    weights: str | Path | None = None,
    random_weights: bool = False,
    min_size: int = 512,
    max_size: int = 1024,
    max_people: int = 10,
) -> torch.nn.Module:
    """Keypoint R-CNN (ResNet-50 FPN, COCO-17) in eval mode.

    Weights: ``random_weights`` (tests), a local ``weights`` file (a state dict), or the
    torchvision COCO weights from the torch hub cache, downloaded when missing. Offline without
    a cached file, raises ``RuntimeError`` naming the file and where to put it.
    """
    check_torchvision()
    from torchvision.models.detection import keypointrcnn_resnet50_fpn

    # A crop holds a few people; capping detections also bounds the keypoint head's work.
    sizes = {
        "min_size": int(min_size),
        "max_size": int(max_size),
        "box_detections_per_img": int(max_people),
        "rpn_post_nms_top_n_test": 100,
    }
    if random_weights:
        model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, **sizes)
    elif weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(f"--weights {path} does not exist")
        model = keypointrcnn_resnet50_fpn(weights=None, weights_backbone=None, **sizes)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    else:
        enum = _weights_enum()
        file_name = Path(enum.url).name
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        try:
            model = keypointrcnn_resnet50_fpn(weights=enum, **sizes)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise RuntimeError(
                f"Keypoint R-CNN weights {file_name} are not in {cache} and could not be "
                f"downloaded ({exc}). Download {enum.url} on a machine with internet and put it "
                f"in {cache}/, or pass --weights /path/to/{file_name}."
            ) from exc
    return model.eval()


class KeypointEstimator:
    """Batched COCO-17 keypoints for person crops with a Keypoint R-CNN model."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        device: str = "cpu",
        score_threshold: float = 0.5,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.score_threshold = float(score_threshold)

    @torch.inference_mode()
    def __call__(self, images: Sequence[Image.Image]) -> list[list[dict[str, Any]]]:
        """PIL images -> per image, a list of skeleton dicts (target first, may be empty)."""
        tensors = [
            torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0)
            .permute(2, 0, 1)
            .to(self.device)
            for im in images
        ]
        results = []
        for im, out in zip(images, self.model(tensors)):
            keep = out["scores"] >= self.score_threshold
            kps = out["keypoints"][keep].cpu().numpy()
            conf = torch.sigmoid(out["keypoints_scores"][keep]).cpu().numpy()
            scores = out["scores"][keep].cpu().numpy().tolist()
            boxes = out["boxes"][keep].cpu().numpy().tolist()
            skeletons = []
            for k, c in zip(kps, conf):
                arr = np.concatenate([k[:, :2], c[:, None]], axis=1)
                skeletons.append(
                    sanitize_keypoints(arr, source="keypoint r-cnn", image_hw=im.size[::-1])
                )
            target = select_target(skeletons, scores=scores, image_hw=im.size[::-1])
            order = list(range(len(skeletons)))
            if target is not None:
                order.remove(target)
                order.insert(0, target)
            results.append(
                [
                    {
                        "keypoints": skeletons[i].tolist(),
                        "is_target": i == target,
                        "score": float(scores[i]),
                        "bbox": [float(v) for v in boxes[i]],
                    }
                    for i in order
                ]
            )
        return results


def output_path(image: Path, images_dir: Path, output_dir: Path) -> Path:
    rel = image.relative_to(images_dir)
    return output_dir / rel.parent / f"{rel.name}{OUTPUT_SUFFIX}"


def estimate_folder(
    images_dir: str | Path,
    output_dir: str | Path,
    *,
    estimator: KeypointEstimator,
    batch_size: int = 8,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Write KPR-style keypoint JSON for every image under ``images_dir`` (recursively).

    Returns counts: ``images`` found, ``skipped`` (already done), ``written``, ``empty``
    (no person detected).
    """
    images_dir, output_dir = Path(images_dir), Path(output_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"--images {images_dir} is not a folder")
    images = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not images:
        raise FileNotFoundError(f"--images {images_dir} holds no images ({IMAGE_EXTENSIONS})")
    if limit is not None:
        images = images[:limit]
    todo = [p for p in images if not output_path(p, images_dir, output_dir).is_file()]
    stats = {"images": len(images), "skipped": len(images) - len(todo), "written": 0, "empty": 0}
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="keypoints", unit="img", disable=not progress)
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        pil = [Image.open(p).convert("RGB") for p in chunk]
        for path, skeletons in zip(chunk, estimator(pil)):
            out = output_path(path, images_dir, output_dir)
            # Atomic: a crash never leaves a half-written file that resume would skip.
            atomic_write_text(out, json.dumps(skeletons))
            stats["written"] += 1
            stats["empty"] += int(not skeletons)
        bar.update(len(chunk))
    bar.close()
    if stats["empty"]:
        logger.warning("%d of %d images had no person detected", stats["empty"], len(todo))
    return stats
