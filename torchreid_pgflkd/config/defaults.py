"""Default configuration (yacs) and its validation.

Only ``config/`` and ``cli/`` read a config node: everything else takes keyword arguments,
which ``config.adapters`` derives from a validated node. Experiment YAMLs in ``configs/``
override only what differs from these defaults.
"""

from __future__ import annotations

from collections.abc import Callable

from yacs.config import CfgNode as CN

from torchreid_pgflkd.data.datamanager import POSE_SOURCES
from torchreid_pgflkd.engine.optim import OPTIMIZERS
from torchreid_pgflkd.engine.step import AMP_MODES
from torchreid_pgflkd.evaluation.features import METRICS
from torchreid_pgflkd.losses.alignment import ALIGN_KINDS
from torchreid_pgflkd.models.backbone import BACKBONES
from torchreid_pgflkd.models.pgflkd import BRANCH_INITS, SAB_INVISIBLE
from torchreid_pgflkd.pose.contract import PART_GROUPINGS

DEVICES = ("auto", "cpu", "cuda")


def get_default_config() -> CN:
    cfg = CN()

    cfg.model = CN()
    cfg.model.backbone = "resnet50"  # resnet18|34|50|101, resnet_mini, osnet_x1_0, ... (BACKBONES)
    cfg.model.pretrained = True  # ImageNet initialisation (fails clearly when unavailable)
    cfg.model.pretrained_path = ""  # explicit ImageNet weights file ('' = hub cache/download)
    cfg.model.num_parts = 6  # P body parts: part maps and SAB channel groups (1|2|3|4|6|8)
    cfg.model.share_layer4 = False  # one layer4 for all branches (cheaper) vs a copy each
    cfg.model.feb = True  # foreground-enhanced branch (ablation: +FEB)
    cfg.model.sab = True  # body-part semantics aligned branch (ablation: +SAB)
    cfg.model.interaction = True  # MB feature classified by FEB/SAB classifiers
    cfg.model.branch_init = "copy"  # copy: every layer4 from the same weights | independent
    cfg.model.last_stride = 1  # 1 keeps 16x8 maps at 256x128; 2 gives 8x4 (pose maps follow)
    # A SAB part with no visible keypoint: pool_all (pool the whole map, as before) | drop
    # (zero feature, left out of feature distillation)
    cfg.model.sab_invisible = "pool_all"

    cfg.data = CN()
    cfg.data.root = "reid-data"  # folder holding the datasets
    cfg.data.sources = ["market1501_pose"]  # training datasets (registered names)
    cfg.data.targets = ["market1501_pose"]  # test datasets
    cfg.data.height = 256  # input image height
    cfg.data.width = 128  # input image width
    cfg.data.workers = 2  # data loader worker processes
    cfg.data.persistent_workers = False  # faster epochs, but resume is then not bit-exact
    cfg.data.dataset_dir = ""  # dataset folder name under root ('' = the usual names)
    cfg.data.keypoints_dir = ""  # keypoint files ('' = each dataset's default location)
    cfg.data.visibility_threshold = 0.2  # keypoints below this confidence are invisible [0, 1]
    cfg.data.soft_visibility = False  # scale each keypoint's map by its confidence
    cfg.data.flip_prob = 0.5  # random horizontal flip (swaps left/right joints)
    cfg.data.pad = 10  # pad-and-random-crop padding in pixels (0 = off)
    cfg.data.erase_prob = 0.5  # random erasing probability (erased joints become invisible)
    cfg.data.color_jitter = False  # colour jitter on/off
    cfg.data.occlusion_prob = 0.0  # cover a crop with a person/object from a side, hide joints
    cfg.data.partial_reid_query = "partial"  # Partial-REID query folder: partial | occluded
    # Pose maps from: keypoints (the method) | stripes | shuffled | none (controls, see README)
    cfg.data.pose_source = "keypoints"
    cfg.data.skip_bad_images = False  # unreadable images: stop before training | drop them
    # Train on a source with no keypoint file at all (pose maps all empty): refused unless True
    cfg.data.allow_missing_pose = False
    cfg.data.cache_images = False  # decode and resize each image once, keep it in memory
    cfg.data.cache_max_gb = 8.0  # refuse a cache larger than this (GB of decoded pixels)

    cfg.synthetic = CN()  # the embedded benchmark (used when a source is synthetic_occluded)
    cfg.synthetic.seed = 0  # data seed: identities, poses, occluders
    cfg.synthetic.num_train_ids = 150  # training identities
    cfg.synthetic.num_test_ids = 100  # test identities (queries + gallery)
    cfg.synthetic.images_per_id = 8  # training images per identity
    # Keypoint estimator model: oracle (exact) | blazepose_like (measured on real BlazePose
    # keypoints, benchmarks/results/keypoint_calibration.json). The numbers below override
    # the preset's; None = the preset's (all 0 for oracle). Default: estimator-like, since
    # oracle keypoints (invisible exactly where an occluder is) flatter the method.
    cfg.synthetic.keypoints = "blazepose_like"
    cfg.synthetic.keypoint_noise = None  # pixel std of keypoint jitter
    cfg.synthetic.keypoint_dropout = None  # probability a visible keypoint is reported missing
    cfg.synthetic.visible_confidence = None  # 0: visible joints at c=1 .. 1: BlazePose-like c
    cfg.synthetic.covered_visible = None  # probability a joint behind an occluder is reported
    cfg.synthetic.covered_noise = None  # pixel std of the position of such a reported joint
    cfg.synthetic.miss_person = None  # probability an image gets no skeleton
    cfg.synthetic.miss_occluded = None  # extra probability for an occluded image
    cfg.synthetic.wrong_person = None  # probability the occluding person's skeleton is given
    cfg.synthetic.occluder_textures = "identities"  # objects wear: identities' clothes | outside

    cfg.sampler = CN()
    cfg.sampler.batch_size = 64  # train batch = num_ids x num_instances
    cfg.sampler.num_instances = 4  # K images per identity in a batch
    cfg.sampler.test_batch_size = 128  # batch size of feature extraction

    cfg.loss = CN()
    cfg.loss.id = 1.0  # weight of identity (label-smoothed CE) losses
    cfg.loss.tri = 1.0  # weight of batch-hard triplet losses
    cfg.loss.align = 1.0  # weight of SAB's part alignment loss
    cfg.loss.kd_logit = 4.0  # weight of logit distillation FEB/SAB -> MB (ablation: +KD)
    cfg.loss.kd_feat = 10.0  # weight of feature distillation FEB/SAB -> MB (ablation: +KD)
    cfg.loss.kd_attn = 1.0  # weight of spatial distillation FEB -> MB (our reading)
    cfg.loss.inter = 1.0  # weight of the interaction loss (needs model.interaction)
    # multiplies every term through which MB learns from SAB (its logits, feature, classifier)
    cfg.loss.sab_teacher = 1.0
    cfg.loss.margin = 0.3  # triplet margin (0 = soft margin)
    cfg.loss.label_smoothing = 0.1  # label smoothing epsilon
    cfg.loss.temperature = 4.0  # logit distillation temperature
    cfg.loss.align_kind = "mse"  # mse | kl

    cfg.train = CN()
    cfg.train.optim = "adam"  # adam | sgd
    cfg.train.lr = 3.5e-4  # base learning rate
    cfg.train.weight_decay = 5e-4  # L2 weight decay
    cfg.train.max_epoch = 120  # epochs
    cfg.train.warmup_epochs = 10  # linear warm-up from lr/10
    cfg.train.milestones = [40, 70]  # epochs where lr is multiplied by gamma
    cfg.train.gamma = 0.1  # lr decay factor
    cfg.train.seed = 1  # random seed (data order, initialisation, augmentation)
    cfg.train.device = "auto"  # auto | cpu | cuda
    cfg.train.amp = "bf16"  # mixed precision on CUDA: none | bf16 | fp16 (ignored on CPU)
    cfg.train.channels_last = True  # NHWC memory format (much faster on CPU and GPU)
    cfg.train.grad_clip = 0.0  # max gradient norm (0 = off)
    cfg.train.print_freq = 20  # iterations between log lines
    cfg.train.eval_freq = -1  # evaluate every N epochs (-1 = at the end only)
    cfg.train.save_dir = "log/pgflkd"  # checkpoints, merged config, TensorBoard, results
    cfg.train.keep_last = 3  # newest epoch snapshots kept (0 = none); last.pth always kept
    cfg.train.snapshot_freq = 0  # keep checkpoint_epochNNN.pth every N epochs (0 = last.pth only)

    cfg.test = CN()
    cfg.test.metric = "euclidean"  # euclidean | cosine
    cfg.test.normalize_feature = False  # L2-normalise features before distances
    cfg.test.rerank = False  # k-reciprocal re-ranking
    cfg.test.visrank = False  # save a ranked-list image per test set
    cfg.test.eval_branches = False  # also evaluate FEB/SAB with pose (ablations)
    return cfg


# What a resumed run may change (``config.resume_config``): how long it trains, how often it
# evaluates, logs and snapshots, where it writes, its loader workers, and every test setting.
RESUME_MUTABLE: tuple[str, ...] = (
    "train.max_epoch",
    "train.eval_freq",
    "train.print_freq",
    "train.keep_last",
    "train.snapshot_freq",
    "train.save_dir",
    "data.workers",
    "test.*",
)

# key -> smallest allowed value
_AT_LEAST: dict[str, float] = {
    "data.height": 1,
    "data.width": 1,
    "data.workers": 0,
    "data.pad": 0,
    "data.cache_max_gb": 0,
    "synthetic.seed": 0,
    "synthetic.num_train_ids": 2,
    "synthetic.num_test_ids": 1,
    "synthetic.images_per_id": 1,
    "synthetic.keypoint_noise": 0,
    "sampler.batch_size": 1,
    "sampler.num_instances": 1,
    "sampler.test_batch_size": 1,
    **{f"loss.{k}": 0 for k in ("id", "tri", "align", "kd_logit", "kd_feat", "kd_attn", "inter")},
    "loss.margin": 0,
    "train.weight_decay": 0,
    "train.max_epoch": 0,
    "train.warmup_epochs": 0,
    "train.seed": 0,
    "train.grad_clip": 0,
    "train.print_freq": 1,
    "train.eval_freq": -1,
    "train.keep_last": 0,
    "train.snapshot_freq": 0,
}
_POSITIVE = ("loss.temperature", "train.lr", "train.gamma")  # must be > 0
_UNIT = (  # probabilities and confidences: in [0, 1]
    "data.visibility_threshold",
    "data.flip_prob",
    "data.erase_prob",
    "data.occlusion_prob",
    "synthetic.keypoint_dropout",
)
_WHY = {  # what a value out of range would do, for the error message
    "data.visibility_threshold": "a keypoint confidence: above 1 every joint is invisible and "
    "every pose loss silently turns off",
    "data.workers": "0 loads in the main process",
    "train.eval_freq": "-1 or 0 evaluates at the end only",
    "train.keep_last": "0 keeps no snapshot",
    "synthetic.num_train_ids": "a triplet needs two identities",
}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _expected(default: object) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, str):
        return "a string"
    if isinstance(default, (list, tuple)):
        item = _expected(default[0]) if default else "values"
        return f"a list of {item.removeprefix('an ').removeprefix('a ')}s"
    if isinstance(default, CN):
        return f"a section (a mapping with keys such as {', '.join(list(default)[:3])})"
    return "null, a number, a string or true/false"


def coerce_value(key: str, value: object, default: object) -> object:
    """``value`` as the type of ``default`` (an int for a float, 'true' for True), or a
    ``ValueError`` naming ``key``, the expected type and what was given."""
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if isinstance(value, bool):
            return value
    elif isinstance(default, (int, float)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if number and isinstance(default, float):
            return float(value)
        if number and isinstance(value, int):
            return value
    elif isinstance(default, str):
        if isinstance(value, str):
            return value
    elif isinstance(default, (list, tuple)):
        if isinstance(value, (list, tuple)):
            if not default:
                return list(value)
            return [coerce_value(f"{key}[{i}]", v, default[0]) for i, v in enumerate(value)]
    elif isinstance(default, CN):
        if isinstance(value, (dict, CN)):
            return value
    elif default is None:  # an optional setting (None = decided elsewhere): any plain value
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
    raise ValueError(f"config {key} must be {_expected(default)}, got {value!r} ({_kind(value)})")


def _check_types(node: CN, defaults: CN, prefix: str = "") -> None:
    """Every key of ``defaults`` is in ``node`` with a value of the default's type."""
    for key, default in defaults.items():
        if key not in node:
            raise ValueError(f"config {prefix}{key} is missing ({_expected(default)})")
        coerce_value(f"{prefix}{key}", node[key], default)  # raises on a wrong type
        if isinstance(default, CN):
            _check_types(node[key], default, f"{prefix}{key}.")


def _get(cfg: CN, key: str) -> object:
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def check_cfg(cfg: CN) -> None:
    """Raise ``ValueError`` naming the key and what it allows when ``cfg`` is invalid.

    Checks every key: its type (that of the default), its range or allowed values, and the
    settings that must agree (batch size and instances, snapshots and ``keep_last``).
    """
    _check_types(cfg, get_default_config())

    def choice(key: str, allowed: tuple) -> None:
        if _get(cfg, key) not in allowed:
            raise ValueError(
                f"config {key}={_get(cfg, key)!r} is not allowed; choose one of {allowed}"
            )

    def fail(key: str, rule: str) -> None:
        why = f" ({_WHY[key]})" if key in _WHY else ""
        raise ValueError(f"config {key}={_get(cfg, key)!r} must be {rule}{why}")

    choice("model.backbone", tuple(sorted(BACKBONES)))
    choice("model.last_stride", (1, 2))
    choice("model.num_parts", tuple(sorted(PART_GROUPINGS)))
    choice("train.amp", AMP_MODES)
    choice("train.optim", OPTIMIZERS)
    choice("train.device", DEVICES)
    choice("test.metric", METRICS)
    choice("loss.align_kind", ALIGN_KINDS)
    choice("data.partial_reid_query", ("partial", "occluded"))
    choice("data.pose_source", POSE_SOURCES)
    choice("model.branch_init", BRANCH_INITS)
    choice("model.sab_invisible", SAB_INVISIBLE)

    def number(key: str, ok: Callable[[float], bool], rule: str) -> None:
        value = _get(cfg, key)
        if value is None:  # an optional setting left to its preset
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
            fail(key, rule)

    for key, low in _AT_LEAST.items():
        number(key, lambda v, low=low: v >= low, f">= {low}")
    for key in _POSITIVE:
        number(key, lambda v: v > 0, "> 0")
    for key in _UNIT:
        number(key, lambda v: 0 <= v <= 1, "in [0, 1]")
    if not 0 <= cfg.loss.label_smoothing < 1:
        fail("loss.label_smoothing", "in [0, 1)")
    for key in ("data.root", "train.save_dir"):
        if not _get(cfg, key):
            fail(key, "a non-empty path")
    for key in ("data.sources", "data.targets"):
        names = _get(cfg, key)
        if not names or not all(names):
            fail(key, "a list of one or more dataset names")
    if cfg.sampler.batch_size % cfg.sampler.num_instances:
        raise ValueError(
            f"config sampler.batch_size={cfg.sampler.batch_size} must be a multiple of "
            f"sampler.num_instances={cfg.sampler.num_instances}"
        )
    milestones = list(cfg.train.milestones)
    if sorted(milestones) != milestones or any(m < 1 for m in milestones):
        fail("train.milestones", "increasing epoch numbers >= 1")
    if cfg.model.interaction and not (cfg.model.feb or cfg.model.sab):
        raise ValueError("config model.interaction=True needs model.feb or model.sab")
    if cfg.train.snapshot_freq and not cfg.train.keep_last:
        raise ValueError(
            f"config train.snapshot_freq={cfg.train.snapshot_freq} with train.keep_last=0 "
            "would delete every snapshot as it is written: set keep_last >= 1, or "
            "snapshot_freq 0 (last.pth only)"
        )
