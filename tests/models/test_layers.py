"""nn layers and scan geometry against direct re-implementations of the published conventions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgeglocal.models import create
from edgeglocal.models.vcmamba import MultiDirMamba, zigzag_orders
from edgeglocal.nn import SS2D, DropPath, LayerNorm2d
from edgeglocal.ops import selective_scan_ref


def _vmamba_cross_scan_reference(m: SS2D, x: torch.Tensor) -> torch.Tensor:
    """VMamba as published: re-order x per direction, project the re-ordered sequence, scan, merge."""
    b, h, w, _ = x.shape
    xz = m.in_proj(x)
    xs, z = xz.chunk(2, dim=-1)
    xs = m.act(m.conv2d(xs.permute(0, 3, 1, 2))).flatten(2)  # (b, d, L) raster
    idx = torch.arange(h * w).view(h, w)
    orders = [idx.flatten(), idx.t().flatten(), idx.flatten().flip(0), idx.t().flatten().flip(0)]
    d = m.d_inner
    y = torch.zeros_like(xs)
    for k, o in enumerate(orders):
        seq = xs[:, :, o]
        dbl = torch.einsum("bdl,cd->bcl", seq, m.x_proj_weight[k])
        dt, B, C = dbl.split([m.dt_rank, m.d_state, m.d_state], dim=1)
        dt = torch.einsum("brl,dr->bdl", dt, m.dt_projs_weight[k])
        sl = slice(k * d, (k + 1) * d)
        out = selective_scan_ref(seq, dt, -torch.exp(m.A_logs[sl]), B, C, m.Ds[sl],
                                 delta_bias=m.dt_projs_bias[k], delta_softplus=True)
        y[:, :, o] += out
    y = m.out_norm(y.transpose(1, 2).reshape(b, h, w, d))
    return m.out_proj(y * m.act(z))


def test_ss2d_equals_vmamba_projections_on_reordered_sequences():
    torch.manual_seed(0)
    m = SS2D(12, d_state=4).eval()
    x = torch.randn(2, 5, 6, 12)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _vmamba_cross_scan_reference(m, x), atol=1e-5, rtol=1e-4)


def _plainmamba_reference(m: MultiDirMamba, x: torch.Tensor) -> torch.Tensor:
    """The official PlainMamba2D loop: one scan per zigzag path, x re-ordered, dt/B/C in raster order."""
    b, _, h, w = x.shape
    xs = m.act(m.conv2d(m.in_conv(x))).flatten(2)
    dt, B, C = m.x_proj(xs.transpose(1, 2)).split([m.dt_rank, m.d_state, m.d_state], dim=-1)
    dt = m.dt_proj(dt).transpose(1, 2)
    orders, inverse, moves = zigzag_orders(h, w)
    y = 0
    for o, inv, mv in zip(orders, inverse, moves):
        dB = m.direction_Bs[mv].t()  # (n, L)
        out = selective_scan_ref(xs[:, :, o], dt, -torch.exp(m.A_log), B.transpose(1, 2) + dB, C.transpose(1, 2),
                                 m.D, delta_bias=m.dt_proj.bias, delta_softplus=True)
        y = y + out[:, :, inv]
    y = m.norm(y.transpose(1, 2)).transpose(1, 2).reshape(b, -1, h, w)
    return m.out_conv(y)


def test_vcmamba_grouped_scan_equals_official_per_direction_loop():
    torch.manual_seed(0)
    m = MultiDirMamba(8, d_state=4).eval()
    x = torch.randn(2, 8, 3, 5)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _plainmamba_reference(m, x), atol=1e-5, rtol=1e-4)


def test_zigzag_paths_are_snakes_with_the_official_starts():
    for h, w in [(3, 4), (4, 3), (2, 2), (5, 7)]:
        orders, inverse, moves = zigzag_orders(h, w)
        starts = orders[:, 0].tolist()
        assert starts == [0, (h - 1) * w + (w - 1 if h % 2 else 0), 0, (h - 1 if w % 2 else 0) * w + w - 1]
        for o, inv, mv in zip(orders, inverse, moves):
            assert sorted(o.tolist()) == list(range(h * w))
            assert torch.equal(o[inv], torch.arange(h * w))
            rows, cols = o // w, o % w
            step = (rows.diff().abs() + cols.diff().abs())
            assert torch.all(step == 1)  # every step moves to a 4-neighbour
            assert mv[0] == 0 and set(mv[1:].tolist()) <= {1, 2, 3, 4}
        # rows-first paths move vertically only between rows, columns-first only horizontally between columns
        assert (moves[0] == 4).sum() == h - 1 and (moves[2] == 1).sum() == w - 1


def test_gcvit_global_query_is_one_window_per_stage():
    model = create("gcvit_xxtiny", depths=(1, 2, 1, 1), embed_dim=8, num_heads=(1, 1, 1, 1)).eval()
    shapes = []
    for stage in model.stages:
        stage.global_block.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out.shape[1:3])))
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert shapes == [(7, 7), (7, 7), (14, 14), (7, 7)]


def test_drop_path_and_layernorm2d():
    x = torch.randn(64, 6, 5, 5)
    dp = DropPath(0.5)
    assert dp.eval()(x) is x
    torch.manual_seed(0)
    out = dp.train()(x)
    dropped = out.flatten(1).abs().sum(1) == 0
    assert 0 < int(dropped.sum()) < 64  # whole examples are dropped, others scaled by 1 / keep
    torch.testing.assert_close(out[~dropped], x[~dropped] * 2)
    ln = LayerNorm2d(6)
    torch.testing.assert_close(ln(x), F.layer_norm(x.permute(0, 2, 3, 1), (6,), ln.weight, ln.bias).permute(0, 3, 1, 2))
