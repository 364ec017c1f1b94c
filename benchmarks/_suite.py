"""What every benchmark script shares: the results folder, ``--output``, the machine block,
logging, and one JSON writer. Scripts run as ``python benchmarks/<name>.py`` import it as
``_suite`` (their folder is on ``sys.path``).

``--output`` is always the JSON report's path (default ``benchmarks/results/<name>.json``);
folders of trained runs, where a script has them, are ``--work-dir``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from torchreid_pgflkd.utils.io import write_json

RESULTS = Path(__file__).resolve().parent / "results"
# Real images for the benchmarks that read them (absent on users' machines: say so).
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def parser(doc: str | None, name: str) -> argparse.ArgumentParser:
    """An argument parser whose ``--output`` defaults to ``benchmarks/results/<name>.json``."""
    p = argparse.ArgumentParser(
        description=(doc or "").strip().split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--output", type=Path, default=RESULTS / f"{name}.json", help="JSON report path")
    return p


def add_run_options(p: argparse.ArgumentParser) -> None:
    """``--no-train`` and the trailing KEY VALUE config overrides of the training scripts."""
    p.add_argument(
        "--no-train", action="store_true", help="summarise the runs already in --work-dir only"
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="[--] KEY VALUE config overrides")


def add_restore_option(p: argparse.ArgumentParser) -> None:
    """``--restore-from JSON ...``: earlier reports of the same script whose runs count."""
    p.add_argument(
        "--restore-from",
        type=Path,
        nargs="+",
        default=[],
        metavar="JSON",
        help="earlier reports of this script whose runs count for this one (settings checked)",
    )


def load_reports(paths: list[Path]) -> list[tuple[str, dict[str, Any]]]:
    """(path, runs) of each ``--restore-from`` report; exits naming a file that is not one."""
    loaded = []
    for path in paths:
        try:
            runs = json.loads(Path(path).read_text())["runs"]
            if not isinstance(runs, dict):
                raise TypeError(f"'runs' is a {type(runs).__name__}, not a mapping")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"--restore-from {path}: not a report of this script ({exc})") from exc
        loaded.append((str(path), runs))
    return loaded


def parse_args(p: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse; a ``--`` after a list option (``--seeds 0 1 -- KEY VALUE``) ends the list."""
    args = p.parse_args()
    if getattr(args, "opts", None) and args.opts[:1] == ["--"]:
        args.opts = args.opts[1:]
    return args


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> dict[str, Any]:
    """Where a figure was measured: CPU, threads, GPU, library versions."""
    cuda = torch.cuda.is_available()
    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "torchreid": _version("torchreid"),
    }


def write_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``report`` (plus a ``machine`` block when it has none) as JSON, atomically."""
    report = {**report}
    report.setdefault("machine", machine())
    out = write_json(report, path)
    logging.getLogger("benchmarks").info("wrote %s", out)
    return out


def require_shared_data() -> Path:
    """The shared real-image folder, or exit with a message saying where it was looked for."""
    if not SHARED_DATA.is_dir():
        raise SystemExit(
            f"real data not found at {SHARED_DATA}: this benchmark reads the project's shared "
            "real images (see ../shared/data/README.md)"
        )
    return SHARED_DATA
