"""The exported WindowAttention node follows the custom-op contract and runs at new sizes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgeglocal.export import to_onnx
from edgeglocal.ops import window_attention, window_attention_ref
from edgeglocal.ops._registry import DOMAIN, OPSET_VERSION, PLUGIN_ATTRS

ALLOWED_ATTR_TYPES = {onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING,
                      onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS, onnx.AttributeProto.STRINGS}


class TwoBlocks(torch.nn.Module):
    """A Swin pair (plain then shifted windows) and a GC ViT global-query layer, channels-last."""

    def __init__(self, c: int = 16, heads: int = 2, window=(4, 4)):
        super().__init__()
        torch.manual_seed(0)
        self.heads, self.window = heads, window
        n_rel = (2 * window[0] - 1) * (2 * window[1] - 1)
        self.qkv = torch.nn.Linear(c, 3 * c)
        self.kv = torch.nn.Linear(c, 2 * c)
        self.table = torch.nn.Parameter(torch.randn(n_rel, heads))
        self.q_global = torch.nn.Parameter(torch.randn(1, window[0] * window[1], c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        kw = dict(num_heads=self.heads, window_size=self.window)
        x = x + window_attention(self.qkv(x), self.table, **kw)
        x = x + window_attention(self.qkv(x), None, shift=(2, 1), **kw)
        x = x + window_attention(self.kv(x), self.table, q_global=self.q_global, **kw)
        return x.permute(0, 3, 1, 2)

    def reference(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        kw = dict(num_heads=self.heads, window_size=self.window)
        x = x + window_attention_ref(self.qkv(x), self.table, **kw)
        x = x + window_attention_ref(self.qkv(x), None, shift=(2, 1), **kw)
        x = x + window_attention_ref(self.kv(x), self.table, q_global=self.q_global, **kw)
        return x.permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = TwoBlocks().eval()
    path = tmp_path_factory.mktemp("wa") / "two_blocks.onnx"
    to_onnx(model, torch.randn(2, 16, 8, 12), path, dynamic="all")
    return model, path


def test_nodes_follow_the_custom_op_contract(exported):
    _, path = exported
    model = onnx.load(str(path))
    nodes = [n for n in model.graph.node if n.domain == DOMAIN]
    assert [n.op_type for n in nodes] == ["WindowAttention"] * 3
    for node in nodes:
        attrs = {a.name: a for a in node.attribute}
        assert {k: attrs[k].s.decode() for k in PLUGIN_ATTRS} == PLUGIN_ATTRS
        assert all(a.type in ALLOWED_ATTR_TYPES for a in node.attribute)
        assert len(node.input) == 3 and all(node.input)
    assert [n for n in nodes if onnx.helper.get_node_attr_value(n, "global_query") == 1] == [nodes[2]]
    assert list(onnx.helper.get_node_attr_value(nodes[1], "shift")) == [2, 1]
    functions = [(f.domain, f.name) for f in model.functions]
    assert functions == [(DOMAIN, "WindowAttention")]
    body_domains = {n.domain for n in model.functions[0].node}
    assert body_domains <= {"", "ai.onnx"}
    assert {(o.domain, o.version) for o in model.opset_import} >= {(DOMAIN, OPSET_VERSION), ("", 18)}
    assert onnx.defs.has("WindowAttention", DOMAIN)
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("shape", [(2, 16, 8, 12), (1, 16, 12, 20), (3, 16, 4, 4)])
def test_onnx_runtime_matches_reference_at_new_sizes(exported, shape):
    model, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(*shape)
    with torch.no_grad():
        expected = model.reference(x).numpy()
        eager = model(x).numpy()
    (got,) = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(eager, expected, atol=1e-4, rtol=1e-4)


OPCHECK_ARGS = [
    (torch.randn(2, 8, 8, 48, requires_grad=True), torch.randn(49, 2, requires_grad=True), None,
     2, [4, 4], [2, 2], 0.25),
    (torch.randn(1, 8, 8, 32), None, torch.randn(1, 16, 16), 2, [4, 4], [0, 0], 0.25),
]


@pytest.mark.parametrize("args", OPCHECK_ARGS, ids=["shifted", "global_query"])
def test_torch_library_registration_is_consistent(args):
    """Schema, fake (meta) kernel and autograd registration, checked by torch itself."""
    torch.library.opcheck(torch.ops.edgeglocal.window_attention.default, args,
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.slow
@pytest.mark.parametrize("args", OPCHECK_ARGS, ids=["shifted", "global_query"])
def test_torch_library_aot_dispatch(args):
    """AOT autograd (torch.compile's backward) traces the op with fake tensors, dynamic shapes too."""
    torch.library.opcheck(torch.ops.edgeglocal.window_attention.default, args)


class SwinStage1(torch.nn.Module):
    """Swin-T stage 1 attention (56x56 tokens, c=96, 3 heads, 7x7 windows): plain then shifted block."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norms = torch.nn.ModuleList(torch.nn.LayerNorm(96) for _ in range(2))
        self.qkvs = torch.nn.ModuleList(torch.nn.Linear(96, 288) for _ in range(2))
        self.projs = torch.nn.ModuleList(torch.nn.Linear(96, 96) for _ in range(2))
        self.tables = torch.nn.ParameterList(torch.nn.Parameter(0.02 * torch.randn(169, 3)) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        for norm, qkv, proj, table, shift in zip(self.norms, self.qkvs, self.projs, self.tables, (0, 3)):
            x = x + proj(window_attention(qkv(norm(x)), table, num_heads=3, window_size=7, shift=shift))
        return x.permute(0, 3, 1, 2)


@pytest.mark.slow
def test_swin_t_stage1_bundle_passes_parity(tmp_path):
    from edgeglocal.export import check_parity

    model = SwinStage1().eval()
    path = tmp_path / "swin_stage1.onnx"
    to_onnx(model, torch.randn(1, 96, 56, 56), path, dynamic="all")
    assert check_parity(model, path, n=2).passed
    assert check_parity(model, path, torch.randn(2, 96, 28, 42)).passed
