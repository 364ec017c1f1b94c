"""``pgflkd`` entry point: one sub-command per module in ``torchreid_pgflkd.cli``.

Each sub-command module defines ``HELP`` (one line), ``add_arguments(parser)`` and
``run(args) -> int``. torchreid's script flags work as aliases (``rewrite_argv``):
``--config-file`` is ``--config``; for the commands that take ``KEY VALUE`` overrides,
``--root R`` is ``data.root R`` and ``-s/--sources A B``, ``-t/--targets A B`` are
``data.sources [A, B]`` / ``data.targets [A, B]``. Errors a user can fix (a bad value, a
missing file, a config key) are one line on stderr and exit code 2; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# command name -> module name in torchreid_pgflkd.cli
SUBCOMMANDS: dict[str, str] = {
    "run": "run",
    "train": "train",
    "test": "test",
    "export": "export",
    "actmap": "actmap",
    "keypoints": "keypoints",
    "fetch-keypoints": "fetch_keypoints",
    "visualize": "visualize",
}
# Commands whose trailing KEY VALUE overrides take --root / --sources / --targets.
WITH_OVERRIDES: tuple[str, ...] = ("train", "test", "actmap")
# Commands with a --config option, which --config-file stands for.
WITH_CONFIG: tuple[str, ...] = ("train", "test", "export", "actmap")
LIST_ALIASES: dict[str, str] = {
    "-s": "data.sources",
    "--sources": "data.sources",
    "-t": "data.targets",
    "--targets": "data.targets",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pgflkd", description="PGFL-KD for occluded person re-identification (torchreid)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"torchreid_pgflkd.cli.{module_name}")
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def rewrite_argv(argv: Sequence[str]) -> list[str]:
    """torchreid's flags -> ours (see the module docstring); ``--debug`` anywhere moves to the
    front. Overrides from aliases go after the command's own ``KEY VALUE`` pairs, so they win."""
    argv = list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    command = next((i for i, a in enumerate(argv) if a in SUBCOMMANDS), None)
    if command is None:
        return (["--debug"] if debug else []) + argv
    head, name, rest = argv[:command], argv[command], argv[command + 1 :]
    out: list[str] = []
    overrides: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        flag, eq, value = arg.partition("=")
        if name in WITH_CONFIG and flag == "--config-file":
            out += ["--config", value] if eq else ["--config"]
        elif name in WITH_OVERRIDES and flag == "--root" and (eq or i + 1 < len(rest)):
            if not eq:
                i += 1
                value = rest[i]
            overrides += ["data.root", value]
        elif name in WITH_OVERRIDES and flag in LIST_ALIASES:
            values = [value] if eq else []
            while not eq and i + 1 < len(rest) and not _ends_list(rest[i + 1]):
                i += 1
                values.append(rest[i])
            if not values:
                raise ValueError(f"{flag} needs at least one dataset name")
            overrides += [LIST_ALIASES[flag], repr(values)]
        else:
            out.append(arg)
        i += 1
    if overrides:
        # Options must precede the KEY VALUE remainder: put the overrides at the very end.
        out += overrides
    return (["--debug"] if debug else []) + head + [name] + out


def _ends_list(arg: str) -> bool:
    """Whether ``arg`` ends a ``-s/-t`` list: an option, or a ``section.key`` override."""
    return arg.startswith("-") or "." in arg


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exceptions whose message tells the user what to fix: shown as one line."""
    from torchreid_pgflkd.engine.checkpoint import CheckpointError
    from torchreid_pgflkd.engine.run_folder import RunFolderBusyError
    from torchreid_pgflkd.models.export import ExportMismatchError

    errors: list[type[BaseException]] = [
        ValueError,  # bad values; KeypointFormatError, MissingPoseError, config errors
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        KeyError,
        ImportError,  # a missing optional dependency, named with its pip extra
        CheckpointError,
        ExportMismatchError,
        RunFolderBusyError,  # another live run trains into train.save_dir
    ]
    try:
        from torchreid_pgflkd.models.backbone import PretrainedWeightsUnavailable

        errors.append(PretrainedWeightsUnavailable)
    except ImportError:  # pragma: no cover - older layouts
        pass
    from torchreid_pgflkd.cli.fetch_keypoints import KeypointDownloadError

    errors.append(KeypointDownloadError)
    return tuple(errors)


def _one_line(exc: BaseException) -> str:
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in raw
    try:
        args = build_parser().parse_args(rewrite_argv(raw))
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
        return int(args._run(args) or 0)
    except _user_errors() as exc:
        if debug:
            raise
        command = next((a for a in raw if a in SUBCOMMANDS), "")
        where = f"pgflkd {command}".strip()
        print(f"{where}: error: {_one_line(exc)} (--debug shows the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
