"""Configuration: yacs defaults, validation, loading, and adapters to keyword arguments.

Files and ``KEY VALUE`` overrides are checked key by key against the defaults before anything
reads them: an unknown key, a list or a number where a section belongs, or ``null`` where a
number belongs is a ``ValueError`` naming the key and the expected type. Only YAML files are
read (yacs would run a ``.py`` config as code).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from yacs.config import CfgNode as CN

from torchreid_pgflkd.config.defaults import (
    RESUME_MUTABLE,
    check_cfg,
    coerce_value,
    get_default_config,
)

logger = logging.getLogger(__name__)

YAML_SUFFIXES: tuple[str, ...] = (".yaml", ".yml")


def load_config(path: str | os.PathLike | None = None, opts: Sequence[str] = ()) -> CN:
    """Defaults, then the YAML file at ``path``, then ``KEY VALUE`` overrides; validated."""
    cfg = get_default_config()
    if path:
        _merge(cfg, _read_yaml(Path(path)), source=f"config file {path}")
    if opts:
        if len(opts) % 2:
            raise ValueError(f"overrides must be KEY VALUE pairs, got an odd list: {list(opts)}")
        for key, value in zip(opts[0::2], opts[1::2]):
            nested: Any = CN._decode_cfg_value(value)  # "[10]" -> [10], "0.1" -> 0.1
            for part in reversed(str(key).split(".")):
                nested = {part: nested}
            _merge(cfg, nested, source="override")
    check_cfg(cfg)
    cfg.freeze()
    return cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    if path.suffix.lower() not in YAML_SUFFIXES:
        raise ValueError(
            f"config file {path}: only YAML files ({', '.join(YAML_SUFFIXES)}) are read; "
            f"a {path.suffix or 'suffix-less'} file is refused because yacs would run a Python "
            "config as code"
        )
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ValueError(f"config file {path} is not valid YAML: {exc}") from exc
    if raw is None:  # an empty file: the defaults
        return {}
    if not isinstance(raw, dict):
        raise ValueError(
            f"config file {path} must map sections to settings (model:, data:, train:, ...), "
            f"found {raw!r}"
        )
    return raw


def _merge(node: CN, raw: Mapping[str, Any], *, source: str, prefix: str = "") -> None:
    """Set the values of ``raw`` in ``node`` after checking each key and type."""
    for key, value in raw.items():
        full = f"{prefix}{key}"
        if key not in node:
            section = prefix.rstrip(".") or "the top level"
            raise ValueError(
                f"{source}: unknown config key {full!r}; {section} has {', '.join(sorted(node))}"
            )
        default = node[key]
        try:
            value = coerce_value(full, value, default)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        if isinstance(default, CN):
            _merge(default, value, source=source, prefix=f"{full}.")
        else:
            node[key] = value


def _flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _mutable(key: str) -> bool:
    return any(key == k or (k.endswith("*") and key.startswith(k[:-1])) for k in RESUME_MUTABLE)


def resume_config(cfg: CN, stored: str | Mapping[str, Any] | None, *, source: str) -> CN:
    """Check a resumed run's merged config ``cfg`` against the config ``stored`` in the
    checkpoint ``source`` (a yacs dump); returns ``cfg``.

    Keys in ``RESUME_MUTABLE`` (epochs, evaluation and logging frequency, snapshots, loader
    workers, ``test.*``) may differ: each change is logged and applies. Any other difference
    raises ``ValueError`` naming the key, both values and what to do, since the resumed
    optimizer, schedule and weights would keep the checkpoint's setting while the new config
    recorded another. A key the stored config lacks (an older release) counts as its default.
    """
    if stored is None:
        logger.warning("%s stores no config: cannot check the settings match", source)
        return cfg
    old = yaml.safe_load(stored) if isinstance(stored, str) else stored
    if not isinstance(old, Mapping):
        raise ValueError(f"{source}: the stored config is not a mapping ({type(old).__name__})")
    old_flat = {**_flatten(get_default_config()), **_flatten(old)}
    changed: list[str] = []
    for key, value in _flatten(cfg).items():
        before = old_flat.get(key, value)
        if before == value or (isinstance(before, list) and list(value) == before):
            continue
        if _mutable(key):
            logger.info("resume: %s changes from %r to %r", key, before, value)
            continue
        changed.append(f"{key} (checkpoint {before!r}, now {value!r})")
    if changed:
        raise ValueError(
            f"cannot resume {source} with different settings: {'; '.join(changed)}. The "
            "resumed run would keep the checkpoint's settings while config.yaml and new "
            "checkpoints recorded yours. Resume with the checkpoint's values, or start a new "
            "run with the new ones (another train.save_dir, or --overwrite). Keys that may "
            f"change on resume: {', '.join(RESUME_MUTABLE)}"
        )
    return cfg


__all__ = ["check_cfg", "get_default_config", "load_config", "resume_config"]
