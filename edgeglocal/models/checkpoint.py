"""Checkpoint loading: plain tensors only, strict key matching with a readable report.

Reads ``.pt`` / ``.pth`` / ``.bin`` (``torch.load(weights_only=True)``) and ``.safetensors``;
unwraps the usual training wrappers (``state_dict`` / ``model`` / pycls' ``model_state`` /
``model_ema`` / ``module.``); applies the architecture's key mapping
(``model.remap_checkpoint(state_dict)`` when defined, e.g. for official layouts); resizes absolute
position embeddings and relative-position bias tables when the checkpoint was trained at another
input or window size.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from edgeglocal.errors import CheckpointError

if TYPE_CHECKING:
    from rich.table import Table

#: Wrapper keys of training checkpoints, most preferred first; EMA copies are used when asked for
#: (``ema=True``, as timm's ``use_ema``) or when they are all the file holds.
WRAPPER_KEYS = ("state_dict", "model", "model_state", "module", "net", "params")
EMA_KEYS = ("state_dict_ema", "model_ema")
#: Buffers that models rebuild from their config; a checkpoint may or may not carry them.
DERIVED_SUFFIXES = ("relative_position_index", "attn_mask", "num_batches_tracked")
REL_TABLE_SUFFIX = "relative_position_bias_table"
POS_EMBED_SUFFIXES = ("pos_embed", "absolute_pos_embed")

StateDict = dict[str, torch.Tensor]


def read_state_dict(path: str | Path, ema: bool = False) -> StateDict:
    """Read a checkpoint file into a flat ``{name: tensor}`` dict, refusing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist or is not a file.")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"Checkpoint {path} contains pickled code; edgeglocal only loads plain tensors "
                "(weights_only), so re-save it with torch.save(model.state_dict(), path)."
            ) from exc
        raise _not_a_checkpoint(path, exc) from exc
    except Exception as exc:  # a non-checkpoint file can fail anywhere inside the unpickler
        raise _not_a_checkpoint(path, exc) from exc
    return unwrap_state_dict(obj, str(path), ema=ema)


def _read_safetensors(path: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _not_a_checkpoint(path, exc) from exc


def _not_a_checkpoint(path: Path, exc: BaseException) -> CheckpointError:
    return CheckpointError(
        f"Checkpoint {path} is truncated or not a PyTorch/safetensors checkpoint "
        f"({type(exc).__name__})."
    )


def unwrap_state_dict(obj: Any, source: str = "checkpoint", ema: bool = False) -> StateDict:
    """Find the tensor dict inside a training checkpoint and strip ``module.`` prefixes."""
    keys = EMA_KEYS + WRAPPER_KEYS if ema else WRAPPER_KEYS + EMA_KEYS
    while isinstance(obj, dict):
        inner = next((obj[k] for k in keys if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{source} holds no state dict (expected a dict of tensors).")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source} holds no tensors (expected a dict of name -> tensor).")
    return {k.removeprefix("module."): v for k, v in tensors.items()}


# --------------------------------------------------------------------------- interpolation


def resize_rel_pos_bias_table(table: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """Resize a Swin table ``((2wh-1)(2ww-1), heads)`` trained at a square window to ``window``.

    Bicubic over the (2wh-1, 2ww-1) grid of relative offsets, as Swin-V1 fine-tuning does;
    the same size returns the table unchanged.
    """
    new_h, new_w = 2 * window[0] - 1, 2 * window[1] - 1
    n, heads = table.shape
    if n == new_h * new_w:
        return table
    side = math.isqrt(n)
    if side * side != n:
        raise CheckpointError(
            f"A relative-position bias table of {n} rows is not square; cannot resize it to "
            f"window {window[0]}x{window[1]}."
        )
    grid = table.T.reshape(1, heads, side, side).float()
    grid = F.interpolate(grid, size=(new_h, new_w), mode="bicubic", align_corners=False)
    return grid.reshape(heads, new_h * new_w).T.contiguous().to(table.dtype)


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int], num_prefix_tokens: int = 0) -> torch.Tensor:
    """Resize an absolute position embedding to a ``grid`` of (H, W) tokens.

    Accepts (1, N, C) token layout (square grid, ``num_prefix_tokens`` class tokens kept) or
    (1, C, H, W) map layout; the same size returns the tensor unchanged.
    """
    if pos.ndim == 4:
        if tuple(pos.shape[-2:]) == tuple(grid):
            return pos
        out = F.interpolate(pos.float(), size=grid, mode="bicubic", align_corners=False)
        return out.to(pos.dtype)
    prefix, tokens = pos[:, :num_prefix_tokens], pos[:, num_prefix_tokens:]
    n = tokens.shape[1]
    if n == grid[0] * grid[1]:
        return pos
    side = math.isqrt(n)
    if side * side != n:
        raise CheckpointError(f"A position embedding of {n} tokens is not a square grid.")
    c = tokens.shape[2]
    maps = tokens.reshape(1, side, side, c).permute(0, 3, 1, 2).float()
    maps = F.interpolate(maps, size=grid, mode="bicubic", align_corners=False)
    tokens = maps.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], c).to(pos.dtype)
    return torch.cat([prefix, tokens], dim=1)


def adapt_to_model(state: StateDict, target: StateDict) -> StateDict:
    """Resize position embeddings and bias tables in ``state`` to the shapes of ``target``."""
    out = dict(state)
    for key, value in state.items():
        want = target.get(key)
        if want is None or want.shape == value.shape:
            continue
        if key.endswith(REL_TABLE_SUFFIX) and value.ndim == 2 and want.shape[1] == value.shape[1]:
            side = math.isqrt(want.shape[0])
            if side * side == want.shape[0] and side % 2 == 1:
                out[key] = resize_rel_pos_bias_table(value, ((side + 1) // 2, (side + 1) // 2))
        elif key.rsplit(".", 1)[-1] in POS_EMBED_SUFFIXES:
            if value.ndim == 4 and want.ndim == 4 and want.shape[:2] == value.shape[:2]:
                out[key] = resize_pos_embed(value, tuple(want.shape[-2:]))
            elif value.ndim == 3 and want.ndim == 3 and want.shape[2] == value.shape[2]:
                side = math.isqrt(want.shape[1])
                if side * side == want.shape[1]:
                    out[key] = resize_pos_embed(value, (side, side))
    return out


# --------------------------------------------------------------------------- matching


@dataclass
class KeyReport:
    """How a checkpoint's keys matched a model's: the basis of strict loading."""

    source: str
    arch: str
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    resized: list[str] = field(default_factory=list)
    loaded: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def sentence(self) -> str:
        """One sentence for the error line."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} shape-mismatched")
        example = ""
        if self.mismatched:
            k, a, b = self.mismatched[0]
            example = f", e.g. {k} is {tuple(a)} in the checkpoint but {tuple(b)} in the model"
        elif self.missing:
            example = f", e.g. {self.missing[0]} is missing"
        elif self.unexpected:
            example = f", e.g. {self.unexpected[0]} is unexpected"
        return (
            f"Checkpoint {self.source} does not match architecture {self.arch}: "
            f"{', '.join(parts)} keys{example}."
        )

    def to_table(self, limit: int = 12) -> "Table":
        """A Rich table of the problem keys (first ``limit`` of each kind)."""
        from rich.table import Table

        table = Table(title=f"Checkpoint keys vs {self.arch}", show_lines=False)
        table.add_column("problem")
        table.add_column("key")
        table.add_column("checkpoint")
        table.add_column("model")
        rows: list[tuple[str, str, str, str]] = []
        rows += [("shape", k, str(tuple(a)), str(tuple(b))) for k, a, b in self.mismatched]
        rows += [("missing", k, "-", "present") for k in self.missing]
        rows += [("unexpected", k, "present", "-") for k in self.unexpected]
        for kind in ("shape", "missing", "unexpected"):
            group = [r for r in rows if r[0] == kind]
            for r in group[:limit]:
                table.add_row(*r)
            if len(group) > limit:
                table.add_row(kind, f"... {len(group) - limit} more", "", "")
        return table


class CheckpointMismatch(CheckpointError):
    """Strict loading failed; ``report`` holds the details for a table."""

    def __init__(self, report: KeyReport):
        super().__init__(report.sentence())
        self.report = report


def match_keys(model: torch.nn.Module, state: StateDict, source: str = "checkpoint", arch: str = "") -> KeyReport:
    """Compare ``state`` with the model's state dict (derived buffers are not required)."""
    target = model.state_dict()
    report = KeyReport(source=source, arch=arch or type(model).__name__)
    for key, want in target.items():
        if key not in state:
            if not key.endswith(DERIVED_SUFFIXES):
                report.missing.append(key)
        elif tuple(state[key].shape) != tuple(want.shape):
            report.mismatched.append((key, tuple(state[key].shape), tuple(want.shape)))
        else:
            report.loaded += 1
    report.unexpected = [k for k in state if k not in target and not k.endswith(DERIVED_SUFFIXES)]
    return report


def load_checkpoint(
    model: torch.nn.Module,
    path_or_state: str | Path | StateDict,
    *,
    strict: bool = True,
    arch: str = "",
    ema: bool = False,
) -> KeyReport:
    """Load weights into ``model`` and return the key report.

    ``strict``: any missing, unexpected or shape-mismatched key raises
    :class:`CheckpointMismatch` (a :class:`CheckpointError`) before the model is touched.
    Position embeddings and bias tables are resized first, so a checkpoint trained at another
    input or window size loads. ``ema``: prefer the EMA weights of a training checkpoint.
    """
    if isinstance(path_or_state, dict):
        source, state = "state dict", dict(path_or_state)
    else:
        source, state = str(path_or_state), read_state_dict(path_or_state, ema=ema)
    remap = getattr(model, "remap_checkpoint", None)
    if callable(remap):
        state = remap(state)
    target = model.state_dict()
    adapted = adapt_to_model(state, target)
    report = match_keys(model, adapted, source, arch)
    report.resized = [k for k in state if adapted[k] is not state[k]]
    if strict and not report.ok:
        raise CheckpointMismatch(report)
    loadable = {
        k: v for k, v in adapted.items() if k in target and tuple(v.shape) == tuple(target[k].shape)
    }
    model.load_state_dict(loadable, strict=False)
    return report
