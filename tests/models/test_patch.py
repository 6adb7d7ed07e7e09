"""export.patch on small local classes with the structure and forward of timm's Swin / GC ViT
attention and of a mamba_ssm user: same outputs before and after, edgeglocal nodes in the graph."""

from __future__ import annotations

import sys
import types

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgeglocal.errors import ExportError
from edgeglocal.export import check_parity, patch, to_onnx


# ---------------------------------------------------------------- timm-structured modules

def rel_index(wh, ww):
    coords = torch.stack(torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)
    return (rel[..., 0] + wh - 1) * (2 * ww - 1) + rel[..., 1] + ww - 1


def partition(x, ws):
    b, h, w, c = x.shape
    x = x.view(b, h // ws[0], ws[0], w // ws[1], ws[1], c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, ws[0] * ws[1], c)


def merge(win, ws, h, w):
    c = win.shape[-1]
    x = win.view(-1, h // ws[0], w // ws[1], ws[0], ws[1], c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, w, c)


class WindowAttention(nn.Module):
    """timm swin_transformer.WindowAttention: forward(windows (B_, N, C), mask (nW, N, N) | None)."""

    def __init__(self, dim, num_heads, window_size):
        super().__init__()
        self.num_heads, self.window_size = num_heads, window_size
        self.scale = (dim // num_heads) ** -0.5
        n = (2 * window_size[0] - 1) * (2 * window_size[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.randn(n, num_heads) * 0.5)
        self.register_buffer("relative_position_index", rel_index(*window_size), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        b_, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b_, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        attn = attn + bias.permute(2, 0, 1).unsqueeze(0)
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(-1, nw, self.num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, self.num_heads, n, n)
        x = (attn.softmax(-1) @ v).transpose(1, 2).reshape(b_, n, -1)
        return self.proj(x)


class SwinTransformerBlock(nn.Module):
    """timm SwinTransformerBlock (NHWC): roll -> pad -> partition -> masked attn -> merge -> crop -> roll."""

    def __init__(self, dim, num_heads, resolution, window=(4, 4), shift=(2, 2)):
        super().__init__()
        self.window_size, self.shift_size = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads, window)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        mask = None
        if any(shift):
            h, w = (-(-r // s) * s for r, s in zip(resolution, window))
            img = torch.zeros(1, h, w, 1)
            cnt = 0
            for hs in (slice(0, -window[0]), slice(-window[0], -shift[0]), slice(-shift[0], None)):
                for ws in (slice(0, -window[1]), slice(-window[1], -shift[1]), slice(-shift[1], None)):
                    img[:, hs, ws] = cnt
                    cnt += 1
            m = partition(img, window)[..., 0]
            mask = (m.unsqueeze(1) - m.unsqueeze(2)).ne(0).float() * -100.0
        self.register_buffer("attn_mask", mask, persistent=False)

    def _attn(self, x):
        b, h, w, c = x.shape
        if any(self.shift_size):
            x = torch.roll(x, (-self.shift_size[0], -self.shift_size[1]), (1, 2))
        ph, pw = (-h) % self.window_size[0], (-w) % self.window_size[1]
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
        out = self.attn(partition(x, self.window_size), mask=self.attn_mask)
        x = merge(out, self.window_size, h + ph, w + pw)[:, :h, :w]
        return torch.roll(x, self.shift_size, (1, 2)) if any(self.shift_size) else x

    def forward(self, x):
        x = x + self._attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class RelPosBias(nn.Module):
    def __init__(self, window_size, num_heads):
        super().__init__()
        n = (2 * window_size[0] - 1) * (2 * window_size[1] - 1)
        self.relative_position_bias_table = nn.Parameter(torch.randn(n, num_heads) * 0.5)
        self.register_buffer("relative_position_index", rel_index(*window_size).view(-1), persistent=False)
        self.area = window_size[0] * window_size[1]

    def forward(self, attn):
        bias = self.relative_position_bias_table[self.relative_position_index].view(self.area, self.area, -1)
        return attn + bias.permute(2, 0, 1).unsqueeze(0)


class WindowAttentionGlobal(nn.Module):
    """timm gcvit.WindowAttentionGlobal: q from the repeated global query when use_global."""

    def __init__(self, dim, num_heads, window_size, use_global=True):
        super().__init__()
        self.window_size, self.num_heads, self.use_global = window_size, num_heads, use_global
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.rel_pos = RelPosBias(window_size, num_heads)
        self.qkv = nn.Linear(dim, dim * (2 if use_global else 3))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, q_global=None):
        b, n, c = x.shape
        if self.use_global and q_global is not None:
            k, v = self.qkv(x).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
            q = q_global.repeat(b // q_global.shape[0], 1, 1, 1)
            q = q.reshape(b, n, self.num_heads, self.head_dim).permute(0, 2, 1, 3)
        else:
            q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn = self.rel_pos((q * self.scale) @ k.transpose(-2, -1))
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class GCViTPair(nn.Module):
    """A local then a global GC ViT attention over windows of a (B, H, W, C) map."""

    def __init__(self, dim=16, heads=2, window=(4, 4)):
        super().__init__()
        self.window = window
        self.local_attn = WindowAttentionGlobal(dim, heads, window, use_global=False)
        self.global_attn = WindowAttentionGlobal(dim, heads, window, use_global=True)
        self.q = nn.Conv2d(dim, dim, 2, 2)

    def forward(self, x):  # x: (B, 8, 8, C); q_global from a 2x reduction -> (B, 4, 4, C)
        b, h, w, c = x.shape
        q_global = self.q(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = x + merge(self.local_attn(partition(x, self.window)), self.window, h, w)
        return x + merge(self.global_attn(partition(x, self.window), q_global), self.window, h, w)


# ---------------------------------------------------------------- a mamba_ssm user

MAMBA_USER_SOURCE = '''
import torch
from torch import nn
from mamba_ssm.ops.selective_scan_interface import selective_scan_fn


class TinyMamba(nn.Module):
    def __init__(self, d=8, n=4):
        super().__init__()
        self.x_proj = nn.Linear(d, 1 + 2 * n, bias=False)
        self.dt_proj = nn.Linear(1, d)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, n + 1).float()).repeat(d, 1))
        self.D = nn.Parameter(torch.ones(d))
        self.n = n

    def forward(self, x):  # (b, l, d)
        dt, B, C = self.x_proj(x).split([1, self.n, self.n], dim=-1)
        delta = (dt @ self.dt_proj.weight.t()).transpose(1, 2)
        return selective_scan_fn(x.transpose(1, 2).contiguous(), delta.contiguous(), -torch.exp(self.A_log),
                                 B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(), self.D,
                                 z=x.transpose(1, 2).contiguous(), delta_bias=self.dt_proj.bias,
                                 delta_softplus=True, return_last_state=False).transpose(1, 2)
'''


def _mamba_ssm_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                         return_last_state=False):
    """A sequential selective scan with mamba_ssm's signature, standing for its CUDA kernel."""
    dt = delta + delta_bias[:, None] if delta_bias is not None else delta
    dt = F.softplus(dt) if delta_softplus else dt
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[2]):
        h = torch.exp(dt[:, :, t, None] * A) * h + dt[:, :, t, None] * B[:, None, :, t] * u[:, :, t, None]
        ys.append((h * C[:, None, :, t]).sum(-1))
    y = torch.stack(ys, -1) + D[:, None] * u
    return y * F.silu(z) if z is not None else y


@pytest.fixture
def mamba_user(monkeypatch):
    """Install a fake ``mamba_ssm`` and a third-party module that imported its selective_scan_fn."""
    iface = types.ModuleType("mamba_ssm.ops.selective_scan_interface")
    _mamba_ssm_reference.__module__ = iface.__name__
    iface.selective_scan_fn = _mamba_ssm_reference
    for name in ("mamba_ssm", "mamba_ssm.ops"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, iface.__name__, iface)
    user = types.ModuleType("third_party_mamba")
    monkeypatch.setitem(sys.modules, user.__name__, user)
    exec(compile(MAMBA_USER_SOURCE, "third_party_mamba.py", "exec"), user.__dict__)
    return user


class ThirdPartyNet(nn.Module):
    def __init__(self, mamba_cls):
        super().__init__()
        self.swin = nn.ModuleList([SwinTransformerBlock(16, 2, (8, 8), shift=(0, 0)),
                                   SwinTransformerBlock(16, 2, (8, 8), shift=(2, 2))])
        self.gc = GCViTPair()
        self.mamba = mamba_cls(d=16)

    def forward(self, x):  # (B, 8, 8, 16)
        for blk in self.swin:
            x = blk(x)
        x = self.gc(x)
        return self.mamba(x.flatten(1, 2))


def _edgeglocal_nodes(path):
    return sorted(n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node
                  if n.domain == "edgeglocal")


def test_patch_keeps_outputs_and_exports_edgeglocal_nodes(mamba_user, tmp_path):
    torch.manual_seed(0)
    model = ThirdPartyNet(mamba_user.TinyMamba).eval()
    x = torch.randn(2, 8, 8, 16)
    keys = list(model.state_dict())
    with torch.no_grad():
        before = model(x)
        patched = patch(model)
        after = patched(x)
    assert patched is model and list(model.state_dict()) == keys
    assert type(model.swin[1]).__name__ == "PatchedSwinTransformerBlock"
    assert type(model.gc.global_attn).__name__ == "PatchedWindowAttentionGlobal"
    assert mamba_user.selective_scan_fn is not _mamba_ssm_reference
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)

    path = tmp_path / "third_party.onnx"
    to_onnx(model, x, path, arch="third_party", dynamic=None)
    # 2 Swin blocks, local + global GC ViT attention, one scan.
    assert _edgeglocal_nodes(path) == ["SelectiveScan", "WindowAttention", "WindowAttention", "WindowAttention",
                                       "WindowAttention"]
    assert check_parity(model, path, inputs=x.numpy(), atol=1e-4).passed


def test_swin_block_needing_padding_falls_back_to_timm_code():
    torch.manual_seed(0)
    block = SwinTransformerBlock(16, 2, (6, 10), shift=(2, 2)).eval()
    attn = WindowAttention(16, 2, (4, 4)).eval()
    x, windows = torch.randn(1, 6, 10, 16), torch.randn(3, 16, 16)
    with torch.no_grad():
        want, want_w = block(x), attn(windows)
        patch(block), patch(attn)
        torch.testing.assert_close(block(x), want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(attn(windows), want_w, atol=1e-5, rtol=1e-5)  # mask-free windows -> op
    assert type(attn).__name__ == "PatchedWindowAttention"


def test_unexportable_call_and_bad_argument_are_clear(mamba_user):
    patch(mamba_user.TinyMamba())
    u = torch.randn(1, 4, 5)
    with pytest.raises(ExportError, match=r"return_last_state=True\) cannot be exported"):
        mamba_user.selective_scan_fn(u, u, -torch.ones(4, 2), torch.randn(1, 2, 5), torch.randn(1, 2, 5),
                                     return_last_state=True)
    with pytest.raises(ExportError, match="expects a torch.nn.Module"):
        patch("not a model")
