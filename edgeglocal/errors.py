"""Errors that carry one sentence for the user.

Every failure a user can cause (bad file, missing camera, unknown op, missing backend)
raises a subclass of :class:`EdgeglocalError`; the CLI prints its message in red and
exits non-zero without a traceback (unless ``--debug``).
"""

from __future__ import annotations


class EdgeglocalError(Exception):
    """Base class: the message is one sentence naming the input and what was expected."""

    exit_code = 1


class InputError(EdgeglocalError, ValueError):
    """A tensor, file or option does not have the expected shape, type or content."""


class CheckpointError(EdgeglocalError):
    """A checkpoint is corrupt, unsafe, or does not match the architecture."""


class BundleError(EdgeglocalError):
    """A bundle (.onnx/.engine + .json) is missing, malformed or uses unknown ops."""


class BackendUnavailable(EdgeglocalError):
    """The requested runtime backend is not installed or cannot run here."""


class ExportError(EdgeglocalError):
    """PyTorch -> ONNX export or a graph pass failed."""


class ParityError(EdgeglocalError):
    """An exported model differs from PyTorch beyond the tolerance."""

    exit_code = 2


class SourceError(EdgeglocalError):
    """A camera, file or stream cannot be opened or read."""


class SinkError(EdgeglocalError):
    """An output cannot be written (permissions, full disk, codec)."""
