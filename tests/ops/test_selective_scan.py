"""selective_scan: reference, eager fast path, ONNX Runtime and onnx's ReferenceEvaluator agree."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto

from edgeglocal.errors import InputError
from edgeglocal.export import to_onnx
from edgeglocal.ops import selective_scan, selective_scan_fn, selective_scan_ref
from edgeglocal.ops._registry import DOMAIN, PLUGIN_ATTRS, registered_ops

INPUTS = ["u", "delta", "A", "B", "C", "D", "delta_bias"]
DECAYS = {  # (A range, delta range): how fast the state forgets, per step
    "mixed": ((-8.0, -0.5), (0.0, 1.0)),
    "strong": ((-60.0, -20.0), (1.0, 3.0)),  # exponents down to -180: exp underflows to 0
    "weak": ((-1e-3, -1e-5), (0.0, 0.1)),  # decay within 1e-6 of 1: the state integrates
}


def make_inputs(b, d, n, l, g=None, *, decay="mixed", D=True, z=True, bias=True, seed=0, dtype=torch.float64):
    """fp64 inputs of mamba's shapes; g=None gives un-grouped (b, n, l) B and C."""
    gen = torch.Generator().manual_seed(seed)
    (a_lo, a_hi), (dt_lo, dt_hi) = DECAYS[decay]
    rand = lambda *s: torch.rand(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    randn = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    bc = (b, n, l) if g is None else (b, g, n, l)
    args = dict(
        u=randn(b, d, l),
        delta=dt_lo + (dt_hi - dt_lo) * rand(b, d, l),
        A=a_lo + (a_hi - a_lo) * rand(d, n),
        B=randn(*bc),
        C=randn(*bc),
        D=randn(d) if D else None,
        z=randn(b, d, l) if z else None,
        delta_bias=0.1 * randn(d) if bias else None,
    )
    return {k: None if v is None else v.to(dtype) for k, v in args.items()}


def assert_close(got, want, tol):
    """Max abs difference within ``tol`` relative to the output's scale (and finite)."""
    got = torch.as_tensor(np.asarray(got, dtype=np.float64)) if not isinstance(got, torch.Tensor) else got.double()
    want = want.double()
    assert torch.isfinite(got).all(), "non-finite values in the output"
    err = (got - want).abs().max().item() if want.numel() else 0.0
    assert err <= tol * (1.0 + want.abs().max().item()), f"max abs error {err:.3g}"


SIZES = [  # (b, d, n, l, g): odd sizes, grouped and un-grouped B/C, l across the 128-step chunk
    (1, 1, 1, 1, None),
    (2, 6, 5, 37, 3),
    (3, 4, 3, 129, None),
    (1, 5, 7, 300, 1),
]
OPTIONS = [  # (D, z, delta_bias, delta_softplus)
    (True, True, True, True),
    (False, False, False, False),
    (True, False, False, True),
    (False, True, True, False),
]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: "b{}d{}n{}l{}g{}".format(*s))
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "D{}z{}bias{}sp{}".format(*map(int, o)))
def test_fast_path_matches_reference(size, options):
    D, z, bias, softplus = options
    args = make_inputs(*size, D=D, z=z, bias=bias)
    want = selective_scan_ref(**args, delta_softplus=softplus)
    assert want.shape == args["u"].shape and want.dtype == torch.float64
    assert_close(selective_scan(**args, delta_softplus=softplus), want, 1e-10)
    fp32 = {k: None if v is None else v.float() for k, v in args.items()}
    got = selective_scan(**fp32, delta_softplus=softplus)
    assert got.dtype == torch.float32
    assert_close(got, want, 1e-5)


def test_reference_follows_the_recurrence_by_hand():
    """One channel, one state, two steps, numbers worked out on paper."""
    u = torch.tensor([[[1.0, 2.0]]], dtype=torch.float64)
    delta = torch.tensor([[[0.5, 1.0]]], dtype=torch.float64)
    A = torch.tensor([[-2.0]], dtype=torch.float64)
    B = torch.tensor([[[3.0, 4.0]]], dtype=torch.float64)
    C = torch.tensor([[[5.0, 6.0]]], dtype=torch.float64)
    D = torch.tensor([0.25], dtype=torch.float64)
    h1 = 0.5 * 3.0 * 1.0
    h2 = np.exp(-2.0) * h1 + 1.0 * 4.0 * 2.0
    want = torch.tensor([[[5.0 * h1 + 0.25, 6.0 * h2 + 0.5]]], dtype=torch.float64)
    for fn in (selective_scan_ref, selective_scan):
        assert_close(fn(u, delta, A, B, C, D), want, 1e-12)


@pytest.mark.parametrize("decay", ["strong", "weak"])
def test_long_sequences_with_strong_and_weak_decay_stay_finite_and_agree(decay, onnx_kit):
    l = 4096
    args = make_inputs(1, 2, 3, l, 1, decay=decay, z=False)
    want = selective_scan_ref(**args, delta_softplus=False)
    tol = l * np.finfo(np.float32).eps  # fp32 rounding of a weak decay (1 - 1e-6) compounds over l steps
    fp32 = {k: None if v is None else v.float() for k, v in args.items()}
    assert_close(selective_scan(**fp32), want, tol)
    model = onnx_kit.node_model("SelectiveScan", INPUTS, TensorProto.FLOAT, delta_softplus=0)
    feeds = {k: fp32[k].numpy() for k in INPUTS}
    assert_close(onnx_kit.ort(model, feeds), want, tol)
    assert_close(onnx_kit.reference_evaluator(model, feeds), want, tol)


@pytest.mark.parametrize("l", [1, 2, 129])
def test_onnx_body_on_unshaped_inputs_any_length(l, onnx_kit):
    args = make_inputs(2, 4, 3, l, 2, z=False)
    want = selective_scan_ref(**args, delta_softplus=True)
    model = onnx_kit.node_model("SelectiveScan", INPUTS, TensorProto.FLOAT, delta_softplus=1)
    feeds = {k: args[k].float().numpy() for k in INPUTS}
    assert_close(onnx_kit.ort(model, feeds), want, 1e-5)
    assert_close(onnx_kit.reference_evaluator(model, feeds), want, 1e-5)


def test_fp16_inputs_compute_in_fp32(onnx_kit):
    args = make_inputs(2, 6, 4, 200, 2, z=False)
    half = {k: v.half() for k, v in args.items() if v is not None}
    # The reference sees the same fp16-rounded numbers, in fp64.
    want = selective_scan_ref(**{k: v.double() for k, v in half.items()}, delta_softplus=True)
    got = selective_scan(**half, delta_softplus=True)
    assert got.dtype == torch.float16
    assert_close(got, want, 2e-3)
    model = onnx_kit.node_model("SelectiveScan", INPUTS, TensorProto.FLOAT16, delta_softplus=1)
    feeds = {k: half[k].numpy() for k in INPUTS}
    for run in (onnx_kit.ort, onnx_kit.reference_evaluator):
        y = run(model, feeds)
        assert y.dtype == np.float16
        assert_close(y, want, 2e-3)


class ScanBlock(torch.nn.Module):
    """The scan as a Mamba block calls it: A, D, delta_bias are parameters; B/C and z are activations."""

    def __init__(self, args, delta_softplus):
        super().__init__()
        self.A = torch.nn.Parameter(args["A"].float())
        self.D = None if args["D"] is None else torch.nn.Parameter(args["D"].float())
        self.bias = None if args["delta_bias"] is None else torch.nn.Parameter(args["delta_bias"].float())
        self.delta_softplus = delta_softplus

    def forward(self, u, delta, B, C, z=None):
        return selective_scan_fn(u, delta, self.A, B, C, self.D, z, self.bias, delta_softplus=self.delta_softplus)


def _activations(args):
    names = ["u", "delta", "B", "C"] + (["z"] if args["z"] is not None else [])
    return tuple(args[k].float() for k in names)


def _export(onnx_kit, args, softplus):
    block = ScanBlock(args, softplus)
    acts = _activations(args)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    bl = {0: batch, args["u"].dim() - 1: length}
    bc = {0: batch, args["B"].dim() - 1: length}
    dynamic = (bl, bl, bc, bc, bl)[: len(acts)]
    return block, onnx_kit.export(block, acts, dynamic_shapes=dynamic)


EXPORTS = [  # (g, D, z, delta_bias, delta_softplus)
    (2, True, True, True, True),
    (None, False, False, False, False),
]


@pytest.mark.parametrize("case", EXPORTS, ids=["grouped-all-options", "plain-no-options"])
def test_exported_model_agrees_at_other_batch_and_length(case, onnx_kit):
    g, D, z, bias, softplus = case
    block, model = _export(onnx_kit, make_inputs(2, 6, 4, 37, g, D=D, z=z, bias=bias), softplus)
    for b, l in [(3, 50), (1, 300)]:
        args = make_inputs(b, 6, 4, l, g, D=D, z=z, bias=bias, seed=b + l)
        args.update(A=block.A.detach().double(), D=None if not D else block.D.detach().double(),
                    delta_bias=None if not bias else block.bias.detach().double())
        want = selective_scan_ref(**args, delta_softplus=softplus)
        acts = _activations(args)
        with torch.no_grad():
            assert_close(block(*acts), want, 1e-5)
        feeds = {i.name: a.numpy() for i, a in zip(model.graph.input, acts)}
        assert_close(onnx_kit.ort(model, feeds), want, 1e-5)
        assert_close(onnx_kit.reference_evaluator(model, feeds), want, 1e-5)


def test_exported_node_follows_the_custom_op_contract(tmp_path):
    args = make_inputs(2, 6, 4, 37, 2)
    manifest = to_onnx(ScanBlock(args, True), _activations(args), tmp_path / "scan.onnx", dynamic="batch")
    assert manifest.custom_ops == ["SelectiveScan"]
    model = onnx.load(tmp_path / "scan.onnx")
    onnx.checker.check_model(model, full_check=True)
    ours = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.op_type for n in ours] == ["SelectiveScan"]
    node = ours[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"delta_softplus": 1, **{k: v.encode() for k, v in PLUGIN_ATTRS.items()}}
    assert len(node.input) == 7 and all(node.input)  # D and delta_bias always present
    assert [(f.domain, f.name) for f in model.functions] == [(DOMAIN, "SelectiveScan")]
    assert all(n.domain in ("", None) for n in model.functions[0].node)  # standard ops only
    assert (DOMAIN, 1) in [(o.domain, o.version) for o in model.opset_import]
    assert onnx.defs.has("SelectiveScan", DOMAIN)
    assert registered_ops()["SelectiveScan"].schema.domain == DOMAIN
    # The z gate follows the node as standard ops.
    assert {"Sigmoid", "Mul"} <= {n.op_type for n in model.graph.node if n.domain == ""}


def test_torch_export_sees_one_node():
    args = make_inputs(2, 6, 4, 37, 2)
    program = torch.export.export(ScanBlock(args, True), _activations(args))
    targets = [n.target for n in program.graph.nodes if n.op == "call_function"]
    assert targets == [torch.ops.edgeglocal.selective_scan.default]


def test_schema_infers_type_and_shape(onnx_kit):
    model = onnx_kit.node_model("SelectiveScan", INPUTS, TensorProto.FLOAT16, delta_softplus=1)
    model.graph.input[0].type.tensor_type.shape.dim.extend(
        [onnx.TensorShapeProto.Dimension(dim_param="b"), onnx.TensorShapeProto.Dimension(dim_value=8),
         onnx.TensorShapeProto.Dimension(dim_param="l")]
    )
    del model.graph.output[:]
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    (y,) = [v for v in inferred.graph.value_info if v.name == "y"]
    assert y.type.tensor_type.elem_type == TensorProto.FLOAT16
    dims = [d.dim_param or d.dim_value for d in y.type.tensor_type.shape.dim]
    assert dims == ["b", 8, "l"]


BAD = [  # (argument, change to the valid fp32 inputs of make_inputs(2, 6, 4, 10, 2))
    ("u", lambda a: a.update(u=a["u"][0])),
    ("delta", lambda a: a.update(delta=a["delta"][:, :, :-1])),
    ("delta", lambda a: a.update(delta=a["delta"].long())),
    ("A", lambda a: a.update(A=a["A"][:5])),
    ("B", lambda a: a.update(B=a["B"][:, :, :3])),
    ("B", lambda a: a.update(B=torch.zeros(2, 4, 4, 10))),  # 4 groups do not divide d=6
    ("C", lambda a: a.update(C=a["C"][..., :-1])),
    ("D", lambda a: a.update(D=a["D"][:, None])),
    ("z", lambda a: a.update(z=a["z"][:1])),
    ("delta_bias", lambda a: a.update(delta_bias=torch.zeros(7))),
    ("A", lambda a: a.update(A=a["A"].numpy())),
]


@pytest.mark.parametrize("argument, change", BAD, ids=[f"{a}-{i}" for i, (a, _) in enumerate(BAD)])
def test_bad_arguments_fail_naming_the_argument(argument, change):
    args = {k: v.float() for k, v in make_inputs(2, 6, 4, 10, 2).items()}
    change(args)
    for fn in (selective_scan, selective_scan_ref):
        with pytest.raises(InputError, match=f"argument '{argument}'"):
            fn(**args)


def test_b_and_c_may_have_different_groups_as_in_mamba_ssm():
    args = make_inputs(2, 6, 3, 20, 2)
    args["C"] = make_inputs(2, 6, 3, 20, 3, seed=1)["C"]
    want = selective_scan_ref(**args, delta_softplus=True)
    assert_close(selective_scan(**args, delta_softplus=True), want, 1e-10)
    # the same by hand: per-channel copies of B and C (channel i reads group i // (d // g))
    per_channel = dict(args, B=args["B"].repeat_interleave(3, 1), C=args["C"].repeat_interleave(2, 1))
    assert_close(selective_scan_ref(**per_channel, delta_softplus=True), want, 1e-12)


@pytest.mark.parametrize("options", [(True, True, True, True), (False, False, False, False)], ids=["all", "none"])
def test_gradients_match_finite_differences(options):
    D, z, bias, softplus = options
    args = make_inputs(2, 4, 3, 7, 2, D=D, z=z, bias=bias)
    names = [k for k, v in args.items() if v is not None]
    leaves = tuple(args[k].requires_grad_() for k in names)

    def scan(*tensors):
        return selective_scan(**dict(zip(names, tensors)), delta_softplus=softplus)

    assert torch.autograd.gradcheck(scan, leaves)


class HalfBlock(torch.nn.Module):
    """A half-precision block that keeps A in fp32, as VMamba's ``-torch.exp(A_logs.float())`` does."""

    def __init__(self, A_log):
        super().__init__()
        self.A_log = torch.nn.Parameter(A_log)

    def forward(self, u, delta, B, C):
        return selective_scan(u, delta, -torch.exp(self.A_log.float()), B, C, delta_softplus=True)


def test_half_model_with_fp32_parameters_exports_one_type(onnx_kit):
    args = make_inputs(2, 6, 4, 37, 2, D=False, z=False, bias=False)
    block = HalfBlock(torch.log(-args["A"]).float()).half()
    half = tuple(args[k].half() for k in ("u", "delta", "B", "C"))
    model = onnx_kit.export(block, half)
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in [*inferred.graph.value_info, *inferred.graph.input]}
    (node,) = [n for n in model.graph.node if n.domain == DOMAIN]
    assert {types.get(name) for name in node.input} == {TensorProto.FLOAT16}
    A = -torch.exp(block.A_log.detach().float()).half().double()  # what the node sees
    want = selective_scan_ref(*(t.double() for t in half[:2]), A, *(t.double() for t in half[2:]), delta_softplus=True)
    feeds = {i.name: t.numpy() for i, t in zip(model.graph.input, half)}
    assert_close(onnx_kit.ort(model, feeds), want, 2e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_fast_path_on_cuda_matches_reference(dtype):
    args = {k: v.to(dtype) for k, v in make_inputs(2, 64, 16, 1000, 4).items()}
    want = selective_scan_ref(**{k: v.double() for k, v in args.items()}, delta_softplus=True)
    got = selective_scan(**{k: v.cuda() for k, v in args.items()}, delta_softplus=True)
    assert got.device.type == "cuda" and got.dtype == dtype
    assert_close(got.cpu(), want, 1e-4 if dtype == torch.float32 else 2e-3)


def test_non_contiguous_inputs_as_mamba_produces_them():
    """Mamba splits x_proj's output into delta, B, C and transposes A: views, not copies."""
    b, d, n, l = 2, 4, 3, 150
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, d + 2 * n, l, generator=gen, dtype=torch.float64)
    u, B, C = x.split([d, n, n], dim=1)
    delta = torch.rand(b, l, d, generator=gen, dtype=torch.float64).transpose(1, 2)
    A = -torch.rand(n, d, generator=gen, dtype=torch.float64).t()
    assert not (B.is_contiguous() or delta.is_contiguous() or A.is_contiguous())
    want = selective_scan_ref(*(t.contiguous() for t in (u, delta, A, B, C)), delta_softplus=True)
    assert_close(selective_scan(u, delta, A, B, C, delta_softplus=True), want, 1e-12)


def test_return_last_state_like_mamba_ssm():
    args = make_inputs(2, 6, 1, 40, 2, z=False)
    args["C"][..., -1] = 1.0  # with n=1 and C_l = 1, y_l - D u_l is the last state itself
    y, state = selective_scan_fn(**args, delta_softplus=True, return_last_state=True)
    assert state.shape == (2, 6, 1)
    assert_close(state[..., 0], y[..., -1] - args["D"] * args["u"][..., -1], 1e-12)
    y_ref, state_ref = selective_scan_ref(**args, delta_softplus=True, return_last_state=True)
    assert_close(y, y_ref, 1e-12)
    assert_close(state, state_ref, 1e-12)
    wide = make_inputs(2, 6, 5, 300, 3)  # and across chunks, with every option
    for got, want in zip(selective_scan_fn(**wide, return_last_state=True), selective_scan_ref(**wide, return_last_state=True)):
        assert_close(got, want, 1e-12)


@pytest.mark.slow
def test_vmamba_stage_one_size_four_way(onnx_kit):
    """A VMamba-T stage-1 sequence (56x56 tokens, d=192, n=16) through all four implementations."""
    args = make_inputs(1, 192, 16, 3136, 1, z=False)
    want = selective_scan_ref(**args, delta_softplus=True)
    fp32 = {k: v.float() for k, v in args.items() if v is not None}
    tol = 1e-4
    assert_close(selective_scan(**fp32, delta_softplus=True), want, tol)
    model = onnx_kit.node_model("SelectiveScan", INPUTS, TensorProto.FLOAT, delta_softplus=1)
    feeds = {k: fp32[k].numpy() for k in INPUTS}
    assert_close(onnx_kit.ort(model, feeds), want, tol)
    assert_close(onnx_kit.reference_evaluator(model, feeds), want, tol)
