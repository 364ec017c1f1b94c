"""``pgflkd run`` (the main job) end to end on a tiny embedded benchmark."""

from __future__ import annotations

import json
from pathlib import Path

from torchreid_pgflkd.cli.main import main


def test_main_command_writes_results_checkpoints_and_figures(
    tiny_opts: list[str], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    opts = [*tiny_opts, "train.max_epoch", "1"]
    assert main(["run", "--no-progress", "--seed", "3", "--output", str(out), *opts]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["models"]) == {"baseline", "pgflkd"}
    for record in summary["models"].values():
        assert {"rank1", "mAP", "mINP"} <= set(record)
        assert record["settings"]["seed"] == 3 and record["settings"]["data_seed"] == 3
        assert Path(record["checkpoint"]).is_file()
    assert summary["models"]["baseline"]["settings"]["feb"] is False
    assert set(summary["gain_points"]) == {"rank1", "mAP", "mINP"}
    for name in ("cmc.png", "ranked_list.png", "activations.png"):
        assert (out / name).stat().st_size > 1000, name
    table = capsys.readouterr().out
    assert "PGFL-KD (full)" in table and "MB only" in table
