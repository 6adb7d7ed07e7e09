"""``--show`` on a real X server (Xvfb): the window shows the rendered frames, and q stops the run."""

from __future__ import annotations

import cv2
import pytest

from edge_task import EdgeTask
from edgeglocal.io.pipeline import run
from xdisplay import XDisplay, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"needs {', '.join(missing_tools())} (apt: xvfb xdotool x11-apps)")


class RenderKeepingTask(EdgeTask):
    """The edge task, keeping the image it last handed to the sinks."""

    def render(self, result, frame):
        self.rendered = super().render(result, frame)
        return self.rendered


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch):
    with XDisplay() as x:
        monkeypatch.setenv("DISPLAY", x.name)
        monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
        yield x


def test_window_shows_the_rendered_frame_and_q_stops_the_run(display, vtest, sobel_model):
    task = RenderKeepingTask(str(sobel_model))
    frames = 0
    with run(task, str(vtest), show=True, max_frames=200) as pipe:
        for _ in pipe:
            frames += 1
            if frames == 3:
                window = display.window(f"edgeglocal: {vtest}")
                assert window is not None, "no window appeared on the X server"
                shown = display.capture(window)
                # the window opens at the frame's size, without toolbars, showing the frame we rendered
                assert shown.shape == task.rendered.shape
                assert cv2.PSNR(shown, task.rendered) > 40, cv2.PSNR(shown, task.rendered)  # measured: identical (PSNR 361)
                display.press(window, "q")
    assert 3 < frames <= 6  # q is read by the next frame's waitKey: the run ends right after it
    assert display.window(f"edgeglocal: {vtest}", timeout=0.5) is None  # closed with the run
