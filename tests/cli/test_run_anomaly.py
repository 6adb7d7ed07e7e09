"""``edgeglocal run --task anomaly`` with no bank: fit on the first frames of the stream, then detect."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from edgeglocal.cli.app import app

MEDIA = Path(__file__).resolve().parents[2] / "samples" / "media"


def test_fit_frames_then_detect_on_the_same_scene(tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "anomaly", "--source", str(MEDIA / "vtest_80.mp4"),
                                      "--fit-frames", "5", "--max-frames", "9", "--save-json",
                                      "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = [json.loads(x) for x in (tmp_path / "anomaly" / "exp" / "results.jsonl").read_text().splitlines()]
    assert [r["state"] for r in records] == ["fitting"] * 5 + ["detect"] * 4
    # The next frames show the same street: fitted on it, the detector calls them normal.
    detections = records[5:]
    assert all(r["score"] < r["threshold"] and r["anomaly"] is False for r in detections)
