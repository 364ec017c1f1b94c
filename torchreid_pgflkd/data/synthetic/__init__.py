"""The embedded procedural occluded person-ReID benchmark (DESIGN section 5).

``generate(root, seed=0, ...)`` writes a small deterministic dataset in the Market-1501
layout with KPR-layout COCO-17 keypoints and returns its folder; ``render_person`` draws a
single figure with its keypoints and mask; ``ESTIMATOR_PRESETS`` are the keypoint estimator
models ``generate(keypoints=...)`` offers (``"oracle"``: exact keypoints).
"""

from torchreid_pgflkd.data.synthetic.appearance import Appearance, Texture, sample_appearance
from torchreid_pgflkd.data.synthetic.estimator import (
    ESTIMATOR_OPTIONS,
    ESTIMATOR_PRESETS,
    estimator_options,
)
from torchreid_pgflkd.data.synthetic.figures import (
    Placement,
    RenderedPerson,
    render_person,
    sample_placement,
)
from torchreid_pgflkd.data.synthetic.generate import (
    KEYPOINT_DIR,
    META_FILE,
    generate,
    generate_from_settings,
    keypoint_path,
)
from torchreid_pgflkd.data.synthetic.plan import (
    FORMAT_VERSION,
    SPLITS,
    ImageSpec,
    SyntheticSettings,
    plan_images,
)
from torchreid_pgflkd.data.synthetic.scene import Sample, identity_appearance, render_sample
from torchreid_pgflkd.data.synthetic.skeleton import Pose, sample_pose

__all__ = [
    "ESTIMATOR_OPTIONS",
    "ESTIMATOR_PRESETS",
    "FORMAT_VERSION",
    "KEYPOINT_DIR",
    "META_FILE",
    "SPLITS",
    "Appearance",
    "ImageSpec",
    "Placement",
    "Pose",
    "RenderedPerson",
    "Sample",
    "SyntheticSettings",
    "Texture",
    "estimator_options",
    "generate",
    "generate_from_settings",
    "identity_appearance",
    "keypoint_path",
    "plan_images",
    "render_person",
    "render_sample",
    "sample_appearance",
    "sample_placement",
    "sample_pose",
]
