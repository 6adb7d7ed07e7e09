"""selective_scan_2d: the cross-scan order, the two variants, and four-way agreement."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from edgeglocal.errors import InputError
from edgeglocal.export import to_onnx
from edgeglocal.ops import selective_scan_2d, selective_scan_2d_ref, selective_scan_ref
from edgeglocal.ops._registry import DOMAIN, PLUGIN_ATTRS
from edgeglocal.ops.selective_scan_2d import scan_positions

INPUTS = ["x", "delta", "A", "B", "C", "D", "delta_bias"]


def make_inputs(b, d, n, h, w, *, D=True, bias=True, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    randn = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    rand = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    l = h * w
    args = dict(
        x=randn(b, d, h, w),
        delta=rand(b, 4, d, l) - 0.5,  # softplus or not, delta' stays small enough to keep some memory
        A=-0.5 - 4 * rand(4 * d, n),
        B=randn(b, 4, n, l),
        C=randn(b, 4, n, l),
        D=randn(4 * d) if D else None,
        delta_bias=0.5 + 0.1 * randn(4 * d) if bias else None,  # keeps delta' > 0 without softplus
    )
    return {k: None if v is None else v.to(dtype) for k, v in args.items()}


def assert_close(got, want, tol):
    got = torch.as_tensor(np.asarray(got, dtype=np.float64)) if not isinstance(got, torch.Tensor) else got.double()
    assert torch.isfinite(got).all(), "non-finite values in the output"
    err = (got - want.double()).abs().max().item()
    assert err <= tol * (1.0 + want.abs().max().item()), f"max abs error {err:.3g}"


def test_scan_positions_are_vmamba_cross_scan_order():
    raster = np.arange(6).reshape(2, 3)  # h=2, w=3
    expected = [raster.ravel(), raster.T.ravel(), raster.ravel()[::-1], raster.T.ravel()[::-1]]
    for k, want in enumerate(expected):
        assert scan_positions(2, 3, k).tolist() == want.tolist()


@pytest.mark.parametrize("follow", [True, False], ids=["vmamba", "vcmamba"])
def test_reference_is_four_one_dimensional_scans(follow):
    """Each direction is a 1-D selective scan of the re-ordered sequence, scattered back and summed."""
    args = make_inputs(2, 3, 4, 3, 5)
    want = selective_scan_2d_ref(**args, delta_softplus=True, params_follow_scan=follow)
    b, d, h, w = args["x"].shape
    x = args["x"].reshape(b, d, h * w)
    total = torch.zeros_like(x)
    for k in range(4):
        p = scan_positions(h, w, k)
        q = p if follow else torch.arange(h * w)
        ch = slice(k * d, (k + 1) * d)
        y = selective_scan_ref(
            x[..., p], args["delta"][:, k][..., q], args["A"][ch], args["B"][:, k][..., q], args["C"][:, k][..., q],
            args["D"][ch], None, args["delta_bias"][ch], delta_softplus=True,
        )
        total[..., p] += y
    assert_close(want, total.reshape(b, d, h, w), 1e-12)


SIZES = [(1, 1, 1, 1, 1), (2, 3, 4, 5, 7), (1, 2, 3, 1, 6), (2, 1, 2, 4, 4), (1, 2, 2, 17, 9)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "b{}d{}n{}_{}x{}".format(*s))
@pytest.mark.parametrize("follow", [True, False], ids=["vmamba", "vcmamba"])
@pytest.mark.parametrize("options", [(True, True, True), (False, False, False)], ids=["all", "none"])
def test_fast_path_matches_reference(size, follow, options):
    D, bias, softplus = options
    args = make_inputs(*size, D=D, bias=bias)
    want = selective_scan_2d_ref(**args, delta_softplus=softplus, params_follow_scan=follow)
    assert want.shape == args["x"].shape
    assert_close(selective_scan_2d(**args, delta_softplus=softplus, params_follow_scan=follow), want, 1e-10)
    fp32 = {k: None if v is None else v.float() for k, v in args.items()}
    got = selective_scan_2d(**fp32, delta_softplus=softplus, params_follow_scan=follow)
    assert got.dtype == torch.float32
    assert_close(got, want, 1e-5)


def test_the_two_variants_differ_only_when_the_order_matters():
    args = make_inputs(1, 2, 3, 4, 5)
    a = selective_scan_2d(**args, params_follow_scan=True)
    b = selective_scan_2d(**args, params_follow_scan=False)
    assert (a - b).abs().max() > 1e-3
    single_row = make_inputs(1, 2, 3, 1, 5)  # k=0, k=1 visit the same order; k=2, k=3 reversed
    a = selective_scan_2d(**single_row, params_follow_scan=True)
    b = selective_scan_2d(**single_row, params_follow_scan=False)
    assert (a - b).abs().max() > 1e-3
    pixel = make_inputs(1, 2, 3, 1, 1)
    assert_close(selective_scan_2d(**pixel, params_follow_scan=False), selective_scan_2d(**pixel), 1e-12)


class SS2DCore(torch.nn.Module):
    """The core of a VMamba SS2D block: per-pixel projections give delta, B, C for the four directions."""

    def __init__(self, d, n, follow):
        super().__init__()
        gen = torch.Generator().manual_seed(1)
        self.d, self.n, self.follow = d, n, follow
        self.proj = torch.nn.Conv2d(d, 4 * (d + 2 * n), 1)
        self.A = torch.nn.Parameter(-0.5 - 4 * torch.rand(4 * d, n, generator=gen))
        self.D = torch.nn.Parameter(torch.randn(4 * d, generator=gen))
        self.bias = torch.nn.Parameter(0.1 * torch.randn(4 * d, generator=gen))

    def params(self, x):
        b, _, h, w = x.shape
        p = self.proj(x).reshape(b, 4, self.d + 2 * self.n, h * w)
        delta, B, C = p.split([self.d, self.n, self.n], dim=2)
        return delta, B.contiguous(), C.contiguous()

    def forward(self, x):
        delta, B, C = self.params(x)
        return selective_scan_2d(x, delta, self.A, B, C, self.D, self.bias, True, self.follow)


@pytest.mark.parametrize("follow", [True, False], ids=["vmamba", "vcmamba"])
def test_exported_model_agrees_at_other_batch_and_map_size(follow, onnx_kit, tmp_path):
    core = SS2DCore(3, 4, follow).eval()
    manifest = to_onnx(core, torch.randn(2, 3, 4, 6), tmp_path / "ss2d.onnx", dynamic="all")
    assert manifest.custom_ops == ["SelectiveScan2D"]
    model = onnx.load(tmp_path / "ss2d.onnx")
    onnx.checker.check_model(model, full_check=True)
    (node,) = [n for n in model.graph.node if n.domain == DOMAIN]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "SelectiveScan2D" and len(node.input) == 7
    assert attrs == {"delta_softplus": 1, "params_follow_scan": int(follow), **{k: v.encode() for k, v in PLUGIN_ATTRS.items()}}
    assert [(f.domain, f.name) for f in model.functions] == [(DOMAIN, "SelectiveScan2D")]
    assert onnx.defs.has("SelectiveScan2D", DOMAIN)
    for shape in [(3, 3, 5, 3), (1, 3, 1, 7)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            delta, B, C = (t.double() for t in core.params(x))
            want = selective_scan_2d_ref(
                x.double(), delta, core.A.double(), B, C, core.D.double(), core.bias.double(), True, follow
            )
            assert_close(core(x), want, 1e-5)
        feeds = {model.graph.input[0].name: x.numpy()}
        assert_close(onnx_kit.ort(model, feeds), want, 1e-5)
        assert_close(onnx_kit.reference_evaluator(model, feeds), want, 1e-5)


@pytest.mark.parametrize("follow, softplus", [(True, True), (False, False)], ids=["vmamba", "vcmamba-no-softplus"])
def test_onnx_body_on_unshaped_fp16_inputs(follow, softplus, onnx_kit):
    args = make_inputs(2, 3, 4, 5, 6)
    half = {k: v.half() for k, v in args.items()}
    flags = dict(delta_softplus=softplus, params_follow_scan=follow)
    want = selective_scan_2d_ref(**{k: v.double() for k, v in half.items()}, **flags)
    got = selective_scan_2d(**half, **flags)
    assert got.dtype == torch.float16
    assert_close(got, want, 2e-3)
    model = onnx_kit.node_model(
        "SelectiveScan2D", INPUTS, TensorProto.FLOAT16, delta_softplus=int(softplus), params_follow_scan=int(follow)
    )
    feeds = {k: half[k].numpy() for k in INPUTS}
    for run in (onnx_kit.ort, onnx_kit.reference_evaluator):
        y = run(model, feeds)
        assert y.dtype == np.float16 and y.shape == (2, 3, 5, 6)
        assert_close(y, want, 2e-3)


def test_64x64_map_four_way(onnx_kit):
    """l = 4096 per direction; small d, n keep the ReferenceEvaluator quick."""
    args = make_inputs(1, 1, 2, 64, 64)
    want = selective_scan_2d_ref(**args)
    fp32 = {k: v.float() for k, v in args.items()}
    tol = 4096 * np.finfo(np.float32).eps
    assert_close(selective_scan_2d(**fp32), want, tol)
    model = onnx_kit.node_model("SelectiveScan2D", INPUTS, TensorProto.FLOAT, delta_softplus=1, params_follow_scan=1)
    feeds = {k: fp32[k].numpy() for k in INPUTS}
    assert_close(onnx_kit.ort(model, feeds), want, tol)
    assert_close(onnx_kit.reference_evaluator(model, feeds), want, tol)


BAD = [  # (argument, change to valid inputs of make_inputs(2, 3, 4, 5, 6))
    ("x", lambda a: a.update(x=a["x"][0])),
    ("delta", lambda a: a.update(delta=a["delta"][:, :2])),
    ("delta", lambda a: a.update(delta=a["delta"][..., :-1])),  # not h*w positions
    ("A", lambda a: a.update(A=a["A"][:3])),  # d rows instead of 4*d
    ("B", lambda a: a.update(B=a["B"].int())),
    ("C", lambda a: a.update(C=a["C"][:, :, :2])),
    ("D", lambda a: a.update(D=a["D"][:3])),
    ("delta_bias", lambda a: a.update(delta_bias=a["delta_bias"][None])),
]


@pytest.mark.parametrize("argument, change", BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_arguments_fail_naming_the_argument(argument, change):
    args = {k: v.float() for k, v in make_inputs(2, 3, 4, 5, 6).items()}
    change(args)
    for fn in (selective_scan_2d, selective_scan_2d_ref):
        with pytest.raises(InputError, match=f"argument '{argument}'"):
            fn(**args)


@pytest.mark.parametrize("follow", [True, False], ids=["vmamba", "vcmamba"])
def test_gradients_match_finite_differences(follow):
    args = make_inputs(1, 2, 3, 3, 2)
    leaves = tuple(v.requires_grad_() for v in args.values())

    def scan(*tensors):
        return selective_scan_2d(*tensors, params_follow_scan=follow)

    assert torch.autograd.gradcheck(scan, leaves)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("follow", [True, False], ids=["vmamba", "vcmamba"])
def test_fast_path_on_cuda_matches_reference(follow):
    args = {k: v.float() for k, v in make_inputs(2, 8, 4, 14, 14).items()}
    want = selective_scan_2d_ref(**{k: v.double() for k, v in args.items()}, params_follow_scan=follow)
    got = selective_scan_2d(**{k: v.cuda() for k, v in args.items()}, params_follow_scan=follow)
    assert got.device.type == "cuda"
    assert_close(got.cpu(), want, 1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("follow", [True, False], ids=["vmamba", "vcmamba"])
def test_vmamba_stage_one_map_four_way(follow, onnx_kit):
    """A VMamba-T stage-1 map (56x56, d=192 channels per direction, n=16) through all four implementations."""
    args = make_inputs(1, 192, 16, 56, 56)
    want = selective_scan_2d_ref(**args, params_follow_scan=follow)
    fp32 = {k: v.float() for k, v in args.items()}
    tol = 1e-4
    assert_close(selective_scan_2d(**fp32, params_follow_scan=follow), want, tol)
    model = onnx_kit.node_model(
        "SelectiveScan2D", INPUTS, TensorProto.FLOAT, delta_softplus=1, params_follow_scan=int(follow)
    )
    feeds = {k: fp32[k].numpy() for k in INPUTS}
    assert_close(onnx_kit.ort(model, feeds), want, tol)
    assert_close(onnx_kit.reference_evaluator(model, feeds), want, tol)
