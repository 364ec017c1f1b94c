"""Default configuration (yacs) and its validation.

Only ``config/`` and ``cli/`` read a config node: everything else takes keyword arguments,
which ``config.adapters`` derives from a validated node. Experiment YAMLs in ``configs/``
override only what differs from these defaults.
"""

from __future__ import annotations

from yacs.config import CfgNode as CN

from torchreid_pgflkd.data.datamanager import POSE_SOURCES
from torchreid_pgflkd.engine.optim import OPTIMIZERS
from torchreid_pgflkd.engine.step import AMP_MODES
from torchreid_pgflkd.evaluation.features import METRICS
from torchreid_pgflkd.losses.alignment import ALIGN_KINDS
from torchreid_pgflkd.models.backbone import RESNETS
from torchreid_pgflkd.models.pgflkd import BRANCH_INITS
from torchreid_pgflkd.pose.contract import PART_GROUPINGS

DEVICES = ("auto", "cpu", "cuda")


def get_default_config() -> CN:
    cfg = CN()

    cfg.model = CN()
    cfg.model.backbone = "resnet50"  # resnet18 | resnet34 | resnet50 | resnet101
    cfg.model.pretrained = True  # ImageNet initialisation (fails clearly when unavailable)
    cfg.model.pretrained_path = ""  # explicit ImageNet weights file ('' = hub cache/download)
    cfg.model.num_parts = 6  # P body parts: part maps and SAB channel groups (1|2|3|4|6|8)
    cfg.model.share_layer4 = False  # one layer4 for all branches (cheaper) vs a copy each
    cfg.model.feb = True  # foreground-enhanced branch (ablation: +FEB)
    cfg.model.sab = True  # body-part semantics aligned branch (ablation: +SAB)
    cfg.model.interaction = True  # MB feature classified by FEB/SAB classifiers
    cfg.model.branch_init = "copy"  # copy: every layer4 from the same weights | independent
    cfg.model.last_stride = 1  # 1 keeps 16x8 maps at 256x128; 2 gives 8x4 (pose maps follow)

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
    cfg.data.visibility_threshold = 0.2  # keypoints below this confidence are invisible
    cfg.data.soft_visibility = False  # scale each keypoint's map by its confidence
    cfg.data.flip_prob = 0.5  # random horizontal flip (swaps left/right joints)
    cfg.data.pad = 10  # pad-and-random-crop padding in pixels (0 = off)
    cfg.data.erase_prob = 0.5  # random erasing probability (erased joints become invisible)
    cfg.data.color_jitter = False  # colour jitter on/off
    cfg.data.occlusion_prob = 0.0  # cover a crop with a person/object from a side, hide joints
    cfg.data.partial_reid_query = "partial"  # Partial-REID query folder: partial | occluded
    # Pose maps from: keypoints (the method) | stripes | shuffled | none (controls, see README)
    cfg.data.pose_source = "keypoints"

    cfg.synthetic = CN()  # the embedded benchmark (used when a source is synthetic_occluded)
    cfg.synthetic.seed = 0  # data seed: identities, poses, occluders
    cfg.synthetic.num_train_ids = 150  # training identities
    cfg.synthetic.num_test_ids = 100  # test identities (queries + gallery)
    cfg.synthetic.images_per_id = 8  # training images per identity
    # Keypoint estimator model: oracle (exact) | blazepose_like (measured on real BlazePose
    # keypoints, benchmarks/results/keypoint_calibration.json). The numbers below override
    # the preset's; None = the preset's (all 0 for oracle).
    cfg.synthetic.keypoints = "oracle"
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
    cfg.train.keep_last = 3  # epoch checkpoints kept besides last.pth

    cfg.test = CN()
    cfg.test.metric = "euclidean"  # euclidean | cosine
    cfg.test.normalize_feature = False  # L2-normalise features before distances
    cfg.test.rerank = False  # k-reciprocal re-ranking
    cfg.test.visrank = False  # save a ranked-list image per test set
    cfg.test.eval_branches = False  # also evaluate FEB/SAB with pose (ablations)
    return cfg


def check_cfg(cfg: CN) -> None:
    """Raise ``ValueError`` naming the key and the allowed values when ``cfg`` is invalid."""

    def choice(key: str, value: object, allowed: tuple) -> None:
        if value not in allowed:
            raise ValueError(f"config {key}={value!r} is not allowed; choose one of {allowed}")

    def positive(key: str, value: float, strict: bool = True) -> None:
        if not (value > 0 if strict else value >= 0):
            raise ValueError(f"config {key}={value!r} must be {'> 0' if strict else '>= 0'}")

    choice("model.backbone", cfg.model.backbone, tuple(sorted(RESNETS)))
    choice("model.last_stride", cfg.model.last_stride, (1, 2))
    choice("model.num_parts", cfg.model.num_parts, tuple(sorted(PART_GROUPINGS)))
    choice("train.amp", cfg.train.amp, AMP_MODES)
    choice("train.optim", cfg.train.optim, OPTIMIZERS)
    choice("train.device", cfg.train.device, DEVICES)
    choice("test.metric", cfg.test.metric, METRICS)
    choice("loss.align_kind", cfg.loss.align_kind, ALIGN_KINDS)
    choice("data.partial_reid_query", cfg.data.partial_reid_query, ("partial", "occluded"))
    choice("data.pose_source", cfg.data.pose_source, POSE_SOURCES)
    choice("model.branch_init", cfg.model.branch_init, BRANCH_INITS)
    for key in ("id", "tri", "align", "kd_logit", "kd_feat", "kd_attn", "inter", "margin"):
        positive(f"loss.{key}", getattr(cfg.loss, key), strict=False)
    positive("loss.temperature", cfg.loss.temperature)
    positive("train.lr", cfg.train.lr)
    positive("train.max_epoch", cfg.train.max_epoch, strict=False)
    positive("data.height", cfg.data.height)
    positive("data.width", cfg.data.width)
    for key in ("flip_prob", "erase_prob", "occlusion_prob"):
        if not 0 <= getattr(cfg.data, key) <= 1:
            raise ValueError(f"config data.{key}={getattr(cfg.data, key)!r} must be in [0, 1]")
    if cfg.sampler.batch_size % cfg.sampler.num_instances:
        raise ValueError(
            f"config sampler.batch_size={cfg.sampler.batch_size} must be a multiple of "
            f"sampler.num_instances={cfg.sampler.num_instances}"
        )
    if not cfg.data.sources or not cfg.data.targets:
        raise ValueError("config data.sources and data.targets must each name >= 1 dataset")
    if sorted(cfg.train.milestones) != list(cfg.train.milestones):
        raise ValueError(f"config train.milestones={cfg.train.milestones} must be increasing")
    if cfg.model.interaction and not (cfg.model.feb or cfg.model.sab):
        raise ValueError("config model.interaction=True needs model.feb or model.sab")
