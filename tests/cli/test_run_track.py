"""``edgeglocal run --task track`` end to end on the sample pedestrian clip, with appearance ReID."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgeglocal.cli.app import app
from edgeglocal.tasks.mot import read_mot

MEDIA = Path(__file__).resolve().parents[2] / "samples" / "media"


def test_track_with_default_reid_writes_mot_and_json(tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "track", "--source", str(MEDIA / "vtest_80.mp4"),
                                      "--max-frames", "6", "--reid", "default", "--save-mot", "--save-json",
                                      "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "track" / "exp"
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(6))
    mot_files = list(run_dir.glob("*.txt"))
    assert len(mot_files) == 1
    rows = read_mot(mot_files[0])
    # vtest shows several walking people: HOG finds some of them and ByteTrack keeps their ids.
    assert len(rows) > 0 and set(rows[:, 0].astype(int)) <= set(range(1, 7))
    assert str(run_dir) in result.output.replace("\n", "")
