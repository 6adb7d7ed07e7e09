"""The task interface (shared/design.md, "Tasks and streams").

A task turns one frame into a result: ``preprocess`` -> ``infer`` -> ``postprocess``, then
``render`` draws it. Stateful tasks (tracks, normal bank, gallery) keep state on the instance;
the pipeline calls ``postprocess`` in frame order from a single thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol

import numpy as np

from edgeglocal.io.frame import Frame


class Result(Protocol):
    """What a task returns for one frame."""

    def to_record(self) -> dict[str, Any]:
        """A JSON-able record (one line of ``--save-json``)."""


Feeds = dict[str, np.ndarray]
Outputs = dict[str, np.ndarray]


class Task(ABC):
    """Base class of dehaze, anomaly, track and retrieve."""

    #: The task's name as used by ``--task`` and ``runs/<task>/``.
    name: str = ""

    @abstractmethod
    def preprocess(self, frame: Frame) -> Feeds:
        """Frame -> model feeds (may be empty for tasks with no model)."""

    @abstractmethod
    def infer(self, feeds: Feeds) -> Outputs:
        """Run the model(s); safe to call from an inference thread."""

    @abstractmethod
    def postprocess(self, outputs: Outputs, frame: Frame) -> Result:
        """Model outputs -> result; updates task state, called in frame order."""

    @abstractmethod
    def render(self, result: Result, frame: Frame) -> np.ndarray:
        """Draw the result; returns a BGR uint8 image for display or saving."""

    def close(self) -> None:
        """Release resources and flush state (e.g. MOT files); called once at the end."""

    def __call__(self, frame: Frame) -> Result:
        return self.postprocess(self.infer(self.preprocess(frame)), frame)
