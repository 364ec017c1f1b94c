"""A second run into a busy ``train.save_dir`` is a one-line CLI error, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchreid_pgflkd.cli.main import main
from torchreid_pgflkd.engine.run_folder import LOCK_NAME, RunFolderBusyError
from torchreid_pgflkd.utils.locking import file_lock

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "embedded.yaml"


def test_a_busy_run_folder_is_one_line_with_exit_code_2(tmp_path: Path, capsys) -> None:
    save_dir = tmp_path / "run"
    argv = ["train", "--config", str(CONFIG), "train.save_dir", str(save_dir)]
    # The lock another live run holds (flock is per open file: this process's own counts).
    with file_lock(save_dir / LOCK_NAME):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"pgflkd train: error: run folder {save_dir} is in use")
        assert "\n" not in err and "Traceback" not in err and "--debug" in err
        with pytest.raises(RunFolderBusyError):
            main([*argv, "--debug"])
