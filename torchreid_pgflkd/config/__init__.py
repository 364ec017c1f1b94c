"""Configuration: yacs defaults, validation, loading, and adapters to keyword arguments."""

from __future__ import annotations

import os
from collections.abc import Sequence

from yacs.config import CfgNode as CN

from torchreid_pgflkd.config.defaults import check_cfg, get_default_config


def load_config(path: str | os.PathLike | None = None, opts: Sequence[str] = ()) -> CN:
    """Defaults, then the YAML file at ``path``, then ``KEY VALUE`` overrides; validated."""
    cfg = get_default_config()
    if path:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            cfg.merge_from_file(str(path))
        except (KeyError, ValueError, AssertionError) as exc:
            raise ValueError(f"config file {path}: {exc}") from exc
    if opts:
        if len(opts) % 2:
            raise ValueError(f"overrides must be KEY VALUE pairs, got an odd list: {list(opts)}")
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, ValueError, AssertionError) as exc:
            raise ValueError(f"bad override in {list(opts)}: {exc}") from exc
    check_cfg(cfg)
    cfg.freeze()
    return cfg


__all__ = ["check_cfg", "get_default_config", "load_config"]
