"""Bundles of the models edgeglocal itself ships or builds on first use, all through :func:`to_onnx`.

- ``dcp``: the dark-channel-prior dehazer packaged as ``edgeglocal/assets/dcp_dehaze.onnx``;
- ``patch`` / ``gem``: the MobileNetV2 feature heads cached by ``tasks.backbones``.

Regenerate the packaged dehazer with::

    python -m edgeglocal.export.packaged dcp edgeglocal/assets/dcp_dehaze.onnx
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edgeglocal.assets import MOBILENETV2_PACKAGE, MOBILENETV2_RESOURCE, mobilenetv2_weights, sha256
from edgeglocal.bundle import Manifest, Preprocess, TensorSpec, manifest_path
from edgeglocal.errors import InputError
from edgeglocal.export.onnx import to_onnx
from edgeglocal.models.dcp import DarkChannelDehaze
from edgeglocal.models.mobilenetv2 import FEATURE_HEADS, IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2

_DCP_PARAMS = ("patch", "omega", "t0", "radius", "eps", "top_divisor")


def export_dcp(path: str | Path, opset: int = 18, **params: float) -> Manifest:
    """Export :class:`DarkChannelDehaze` to ``path`` (dynamic batch, H, W) with its manifest."""
    model = DarkChannelDehaze(**params)
    return to_onnx(
        model, torch.rand(1, 3, 64, 96), path, task="dehaze", arch="dcp", dynamic="all", opset=opset,
        input_specs=[TensorSpec("image", [], layout="NCHW", meaning="hazy RGB image in [0, 1]",
                                preprocess=Preprocess(color="RGB", resize="none"))],
        output_specs=[
            TensorSpec("dehazed", [], layout="NCHW", meaning="dehazed RGB image in [0, 1]"),
            TensorSpec("transmission", [], layout="NCHW", meaning="refined transmission t in [t0, 1]"),
            TensorSpec("atmosphere", [], meaning="atmospheric light A, RGB in [0, 1]"),
        ],
        extra={"params": {k: getattr(model, k) for k in _DCP_PARAMS}},
    )


def export_features(kind: str, path: str | Path, opset: int = 18) -> Manifest:
    """Export the ImageNet MobileNetV2 ``kind`` head ("patch" or "gem") to ``path`` with its manifest
    (dynamic batch, H, W; input normalised with the ImageNet mean/std)."""
    if kind not in FEATURE_HEADS:
        raise InputError(f"Feature kind {kind!r} is not one of {', '.join(FEATURE_HEADS)}.")
    size = {"patch": [256, 256], "gem": [224, 224]}[kind]
    output = {
        "patch": TensorSpec("features", [], layout="NCHW",
                            meaning="local patch features at stride 8 (stride-8 + stride-16 stages)"),
        "gem": TensorSpec("embedding", [], meaning="L2-normalised GeM (p=3) embedding"),
    }[kind]
    return to_onnx(
        FEATURE_HEADS[kind](mobilenet_v2()), torch.rand(2, 3, *size), path, task="features",
        arch=f"mobilenetv2_{kind}", dynamic="all", opset=opset,
        input_specs=[TensorSpec(
            "image", [], layout="NCHW", meaning="RGB image, ImageNet-normalised",
            preprocess=Preprocess(color="RGB", mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD),
                                  resize="stretch", size=size),
        )],
        output_specs=[output],
        extra={"weights": f"{MOBILENETV2_PACKAGE}/{MOBILENETV2_RESOURCE}",
               "weights_sha256": sha256(mobilenetv2_weights()), "stride": 8 if kind == "patch" else 32},
    )


EXPORTS = {"dcp": export_dcp, "patch": lambda p: export_features("patch", p), "gem": lambda p: export_features("gem", p)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=sorted(EXPORTS))
    parser.add_argument("path", help="where to write the .onnx (+ .json)")
    args = parser.parse_args(argv)
    EXPORTS[args.model](args.path)
    print(f"wrote {args.path} and {manifest_path(args.path)}")


if __name__ == "__main__":
    main()
