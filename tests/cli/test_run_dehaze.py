"""``edgeglocal run --task dehaze`` end to end on the sample hazy photos and the sample clip."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from typer.testing import CliRunner

from edgeglocal.cli.app import app

MEDIA = Path(__file__).resolve().parents[2] / "samples" / "media"


def test_dehaze_images_keep_names_and_gain_contrast(tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "dehaze", "--source", str(MEDIA / "aero*.jpg"),
                                      "--save", "--save-json", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "dehaze" / "exp"
    assert sorted(p.name for p in run_dir.iterdir()) == ["aero1.jpg", "aero3.jpg", "results.jsonl"]
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert [Path(r["path"]).name for r in records] == ["aero1.jpg", "aero3.jpg"]
    for name in ("aero1.jpg", "aero3.jpg"):
        hazy = cv2.imread(str(MEDIA / name))
        clear = cv2.imread(str(run_dir / name))
        assert clear.shape == hazy.shape
        # Haze adds a bright, flat veil: removing it darkens the image and stretches its contrast.
        assert clear.mean() < hazy.mean() and clear.std() > hazy.std()


def test_dehaze_video_with_stride(tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "dehaze", "--source", str(MEDIA / "vtest_80.mp4"),
                                      "--vid-stride", "20", "--save", "--save-json", "--project", str(tmp_path)])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "dehaze" / "exp"
    frames = [json.loads(x)["frame"] for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert frames == [0, 20, 40, 60]
    cap = cv2.VideoCapture(str(run_dir / "vtest_80.mp4"))
    # 10 fps input, every 20th frame: 0.5 fps, so the 8 s clip still lasts 8 s.
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 4 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(0.5)


def test_python_embedding_sample(tmp_path):
    import subprocess
    import sys

    sample = MEDIA.parent / "python" / "run_stream.py"
    env = {"PYTHONPATH": str(MEDIA.parents[1]), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, str(sample), "--source", str(MEDIA / "aero3.jpg"), "--save"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("frame 0: {") and "saved to runs/dehaze/exp" in proc.stdout
    assert cv2.imread(str(tmp_path / "runs" / "dehaze" / "exp" / "aero3.jpg")).shape == cv2.imread(str(MEDIA / "aero3.jpg")).shape
