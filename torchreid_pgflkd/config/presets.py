"""Settings of the embedded benchmark run by ``pgflkd run`` (``configs/embedded.yaml`` = cpu)."""

from __future__ import annotations

# KEY VALUE overrides of the defaults; "cpu" trains in minutes on 2 cores, "gpu" is the
# paper-sized setting (ResNet-50, 256x128, mixed precision).
EMBEDDED_PRESETS: dict[str, dict[str, object]] = {
    "cpu": {
        "model.backbone": "resnet_mini",
        "model.pretrained": False,
        "data.root": "reid-data/synthetic",
        "data.sources": ["synthetic_occluded"],
        "data.targets": ["synthetic_occluded"],
        "data.height": 128,
        "data.width": 64,
        "data.pad": 6,
        # Faster short runs; the recorded figures were made so (resume is then not bit-exact).
        "data.persistent_workers": True,
        "sampler.batch_size": 64,
        "sampler.num_instances": 4,
        "train.lr": 0.001,
        "train.max_epoch": 30,
        "train.warmup_epochs": 3,
        "train.milestones": [20, 27],
        "train.amp": "none",
        "train.save_dir": "log/embedded",
    },
    "gpu": {
        "model.backbone": "resnet50",
        "model.pretrained": False,
        "data.root": "reid-data/synthetic",
        "data.sources": ["synthetic_occluded"],
        "data.targets": ["synthetic_occluded"],
        "data.height": 256,
        "data.width": 128,
        "data.workers": 8,
        "synthetic.num_train_ids": 600,
        "synthetic.num_test_ids": 400,
        "sampler.batch_size": 64,
        "train.lr": 0.00035,
        "train.max_epoch": 60,
        "train.warmup_epochs": 5,
        "train.milestones": [40, 55],
        "train.amp": "bf16",
        "train.save_dir": "log/embedded_gpu",
    },
}


def preset_opts(name: str) -> list[str]:
    """A preset as a yacs ``merge_from_list`` list."""
    if name not in EMBEDDED_PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(EMBEDDED_PRESETS)}")
    out: list[str] = []
    for key, value in EMBEDDED_PRESETS[name].items():
        out += [key, repr(value) if not isinstance(value, str) else value]
    return out
