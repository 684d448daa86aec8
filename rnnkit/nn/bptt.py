"""Hand-written BPTT: a whole sequence of one layer and direction as a ``torch.autograd.Function``.

The PyTorch twin of ``rnnkit.reference``: the same cells and the same derivation, but run the
way cuDNN runs it. Autograd over the explicit cells (``recurrence.run_direction``) records
about ten small ops per step and forms every weight gradient step by step; here

- **forward** runs the recurrence (one ``(B, H) x (H, kH)`` matmul and a few pointwise ops per
  step, the input projection ``gx = x W_ih^T + b`` for all T steps at once) and keeps what
  backward needs: the gate activations and the states;
- **backward** runs the recurrence in reverse, one ``(B, kH) x (kH, H)`` matmul and pointwise
  work per step, producing ``dA_t``, the gradient of step t's gate pre-activations. Every
  parameter gradient is then one GEMM (or one sum) over all T*B rows, and so is dx::

      dW_ih = sum_t dA_t^T x_t        dx_t = dA_t W_ih        db = sum_t dA_t
      dW_hh = sum_t dA_t^T h_{t-1}    (dA_t of the hidden-side terms; see the GRU)

**Notation**, per step, batch-first: x_t (B, I), h (B, H), c (B, H); ``g`` is the gradient
reaching h_t (from the layer above, ``grad_out[t]``, and from step t+1), ``dc`` the gradient
reaching c_t. sigma' = sigma (1 - sigma), tanh' = 1 - tanh^2 (from the outputs, which forward
keeps), hard_sigmoid' = 0.2 inside (0, 1) and 0 where it is clipped.

**Ragged lengths**: with a mask m_t (B, 1), 1 where step t is real, the state is carried,
``h_t = m h'_t + (1 - m) h_{t-1}``, and the output is ``m h'_t``. So at a padded step the
gradient passes to h_{t-1} unchanged and no gate receives any: backward multiplies the
per-step coefficients by m once, before the loop, and lets the carried gradient through
with ``(1 - m)``. This is what ``recurrence.run_direction`` computes, and what torch's packed
sequences compute.

Each ``*Sequence.apply`` takes and returns time-major tensors, x (T, B, I) -> outputs
(T, B, H), and the final state; ``run_direction`` has ``recurrence.run_direction``'s
signature, so ``recurrence.run_stack`` stacks layers and directions over either.
Autocast: the sequence runs in the autocast dtype (bf16 on CPU, fp16/bf16 on CUDA), its
inputs cast once on the way in, as a fused kernel would.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from rnnkit.nn.cells import CellWeights, GRUStep, LSTMStep, RNNStep, State, Step, sum_biases
from rnnkit.nn.gemm import linear


def _project(x: Tensor, w_ih: Tensor, bias: Tensor | None) -> Tensor:
    """gx = x W_ih^T + b for all steps at once: x (T, B, I) -> (T, B, kH)."""
    gx = linear(x, w_ih)
    return gx if bias is None else gx.add_(bias)


def _gate(y: Tensor, hard: bool) -> Tensor:
    """sigmoid or hard_sigmoid, in place."""
    return y.mul_(0.2).add_(0.5).clamp_(0.0, 1.0) if hard else y.sigmoid_()


def _gate_derivative(y: Tensor, hard: bool) -> Tensor:
    """d gate / d pre-activation from the gate's output y: y (1 - y), or 0.2 on (0, 1)."""
    return 0.2 * ((y > 0) & (y < 1)).to(y.dtype) if hard else y * (1 - y)


def _masked(mask: Tensor | None, dtype: torch.dtype) -> tuple[Tensor | None, Tensor | None]:
    """mask (T, B, 1) bool -> (m, 1 - m) as numbers, or (None, None) without a mask."""
    if mask is None:
        return None, None
    m = mask.to(dtype)
    return m, 1 - m


def _linear_grads(
    ctx: Any, dA_x: Tensor, x: Tensor, w_ih: Tensor, dA_h: Tensor, h_prev: Tensor | None
) -> tuple[Tensor | None, ...]:
    """The GEMMs over all steps: dx = dA_x W_ih, dW_ih = dA_x^T x, dW_hh = dA_h^T h_{t-1},
    db_ih = sum dA_x, db_hh = sum dA_h; each only if its input needs a gradient (h_prev None:
    the caller forms dW_hh). dA_x (T, B, kH), x (T, B, I), dA_h (T, B, kH), h_prev (T, B, H)."""
    need = ctx.needs_input_grad
    rows_x, rows_h = dA_x.flatten(0, 1), dA_h.flatten(0, 1)  # (T*B, kH)
    dx = linear(rows_x, w_ih.t()).view(x.shape) if need[0] else None
    dw_ih = linear(rows_x.t(), x.flatten(0, 1).t()) if need[1] else None
    dw_hh = linear(rows_h.t(), h_prev.flatten(0, 1).t()) if need[2] and h_prev is not None else None
    db_ih = rows_x.sum(0) if need[3] else None
    db_hh = rows_h.sum(0) if need[4] else None
    return dx, dw_ih, dw_hh, db_ih, db_hh


class RNNSequence(torch.autograd.Function):
    """Elman RNN, ``h_t = act(a_t)``, ``a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``.

    Backward, per step: ``dA_t = g * act'(a_t)`` (tanh' = 1 - h_t^2; relu' = [h_t > 0]) and
    ``dh_{t-1} = dA_t W_hh``.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, mask, nonlinearity):
        gx = _project(x, w_ih, sum_biases(b_ih, b_hh))  # (T, B, H)
        act = torch.Tensor.tanh_ if nonlinearity == "tanh" else torch.Tensor.relu_
        hs = x.new_empty(gx.shape[0] + 1, *h0.shape)  # (T+1, B, H): h_0 .. h_T, carried
        hs[0] = h0
        y = hs[1:] if mask is None else torch.empty_like(gx)  # act(a_t): h_t before masking
        for t in range(gx.shape[0]):
            act(torch.add(gx[t], linear(hs[t], w_hh), out=y[t]))
            if mask is not None:
                torch.where(mask[t], y[t], hs[t], out=hs[t + 1])
        out = y.clone() if mask is None else y * mask
        ctx.save_for_backward(x, w_ih, w_hh, y, hs, mask)
        ctx.nonlinearity = nonlinearity
        ctx.mark_non_differentiable(*(() if mask is None else (mask,)))
        return out, hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        x, w_ih, w_hh, y, hs, mask = ctx.saved_tensors
        slope = 1 - y * y if ctx.nonlinearity == "tanh" else (y > 0).to(y.dtype)  # act'(a)
        m, keep = _masked(mask, y.dtype)
        if m is not None:
            slope, grad_out = slope * m, grad_out * m
        dA = torch.empty_like(y)  # (T, B, H)
        w_t = w_hh.t().contiguous()  # dh_{t-1} = dA_t W_hh = linear(dA_t, W_hh^T)
        dh = grad_h
        for t in reversed(range(y.shape[0])):
            torch.mul(dh + grad_out[t], slope[t], out=dA[t])
            dh = linear(dA[t], w_t) if keep is None else linear(dA[t], w_t).addcmul_(dh, keep[t])
        grads = _linear_grads(ctx, dA, x, w_ih, dA, hs[:-1])
        return *grads, dh, None, None


class LSTMSequence(torch.autograd.Function):
    """LSTM, gates (i, f, g, o) with optional peepholes w_ci, w_cf, w_co (``cells.LSTMStep``).

    Backward, per step, with ``tc = tanh(c_t)``:

        dA_o = g * tc * o'                        (o' = o (1 - o))
        dc   = dc + g * o * tanh'(c_t) [+ dA_o w_co]   the total gradient at c_t
        dA_i = dc * g_t * i'    dA_f = dc * c_{t-1} * f'    dA_g = dc * i * tanh'(g_t)
        dc_{t-1} = dc * f [+ dA_i w_ci + dA_f w_cf]     dh_{t-1} = dA_t W_hh

    The products that do not depend on the incoming gradient (``g_t i'``, ``c_{t-1} f'``,
    ``i tanh'(g_t)``, ``tc o'``, ``o tanh'(c_t)``) are formed for all steps at once before the
    loop; peephole gradients are sums after it: ``dw_ci = sum dA_i c_{t-1}``,
    ``dw_cf = sum dA_f c_{t-1}``, ``dw_co = sum dA_o c_t``.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, w_ch, h0, c0, mask):
        gates = _project(x, w_ih, sum_biases(b_ih, b_hh))  # (T, B, 4H): overwritten step by step
        steps, batch, hidden = gates.shape[0], h0.shape[0], h0.shape[1]
        hs = x.new_empty(steps + 1, batch, hidden)  # h_0 .. h_T, carried
        cs = x.new_empty(steps + 1, batch, hidden)  # c_0 .. c_T, carried
        tcs = torch.empty_like(hs[1:])  # tanh(c'_t), c'_t the new cell before masking
        new_h, new_c = (
            (torch.empty_like(h0), torch.empty_like(c0)) if mask is not None else (None, None)
        )
        hs[0], cs[0] = h0, c0
        for t in range(steps):
            a, c = gates[t], cs[t]
            a += linear(hs[t], w_hh)  # (B, 4H) pre-activations, in place of gx_t
            i_f = a[:, : 2 * hidden]
            if w_ch is not None:  # i and f see c_{t-1}: [i, f] += [c, c] * [w_ci, w_cf]
                i_f.addcmul_(c.repeat(1, 2), w_ch[: 2 * hidden])
            i, f = i_f.sigmoid_().chunk(2, 1)
            g = a[:, 2 * hidden : 3 * hidden].tanh_()
            c_new = torch.addcmul(f * c, i, g, out=cs[t + 1] if mask is None else new_c)
            o = a[:, 3 * hidden :]
            if w_ch is not None:  # o sees c_t
                o.addcmul_(c_new, w_ch[2 * hidden :])
            o.sigmoid_()
            h_new = torch.mul(
                o, torch.tanh(c_new, out=tcs[t]), out=hs[t + 1] if mask is None else new_h
            )
            if mask is not None:
                torch.where(mask[t], c_new, c, out=cs[t + 1])
                torch.where(mask[t], h_new, hs[t], out=hs[t + 1])
        out = gates[:, :, 3 * hidden :] * tcs  # o * tanh(c'): the new h of every step
        if mask is not None:
            out = out * mask
        ctx.save_for_backward(x, w_ih, w_hh, w_ch, gates, hs, cs, tcs, mask)
        ctx.mark_non_differentiable(*(() if mask is None else (mask,)))
        return out, hs[-1].clone(), cs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_h, grad_c):
        x, w_ih, w_hh, w_ch, gates, hs, cs, tcs, mask = ctx.saved_tensors
        hidden = hs.shape[-1]
        i, f, g, o = gates.chunk(4, 2)  # (T, B, H) each
        c_prev = cs[:-1]
        coef = torch.cat([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g),
                          tcs * o * (1 - o)], 2)  # (T, B, 4H): dA / (dc or g) per gate  # fmt: skip
        o_dc = o * (1 - tcs * tcs)  # (T, B, H): d h_t / d c_t
        m, keep = _masked(mask, gates.dtype)
        if m is not None:
            coef, o_dc, grad_out = coef * m, o_dc * m, grad_out * m
            f = f * m + keep  # a padded step carries dc through unchanged
        dA = torch.empty_like(gates)  # (T, B, 4H)
        w_t = w_hh.t().contiguous()  # (H, 4H)
        dh, dc = grad_h, grad_c
        for t in reversed(range(gates.shape[0])):
            gh = dh + grad_out[t]
            d_ifg, d_o = dA[t, :, : 3 * hidden], dA[t, :, 3 * hidden :]
            torch.mul(gh, coef[t, :, 3 * hidden :], out=d_o)
            dc = torch.addcmul(dc, gh, o_dc[t])
            if w_ch is not None:
                dc.addcmul_(d_o, w_ch[2 * hidden :])
            coef_ifg = coef[t, :, : 3 * hidden].view(-1, 3, hidden)
            torch.mul(coef_ifg, dc.unsqueeze(1), out=d_ifg.view(-1, 3, hidden))
            dc = dc * f[t]
            if w_ch is not None:
                dc.addcmul_(d_ifg[:, :hidden], w_ch[:hidden])
                dc.addcmul_(d_ifg[:, hidden : 2 * hidden], w_ch[hidden : 2 * hidden])
            dh = linear(dA[t], w_t) if keep is None else linear(dA[t], w_t).addcmul_(dh, keep[t])
        grads = _linear_grads(ctx, dA, x, w_ih, dA, hs[:-1])
        d_ch = None
        if w_ch is not None and ctx.needs_input_grad[5]:
            d_ch = torch.cat([(dA[:, :, :hidden] * c_prev).sum((0, 1)),
                              (dA[:, :, hidden : 2 * hidden] * c_prev).sum((0, 1)),
                              (dA[:, :, 3 * hidden :] * cs[1:]).sum((0, 1))])  # fmt: skip
        return *grads, d_ch, dh, dc, None


class GRUSequence(torch.autograd.Function):
    """GRU, gates (r, z, n), reset after or before, sigmoid or hard-sigmoid gates
    (``cells.GRUStep``); ``h_t = n + z (h_{t-1} - n)``.

    Backward, per step: ``dA_n = g (1 - z) tanh'(n)``, ``dA_z = g (h_{t-1} - n) z'``, and the
    direct path ``dh_{t-1} = g z + ...``. Then, by where r applies:

    - reset="after", ``n = tanh(gx_n + r * gh_n)`` with ``gh = W_hh h_{t-1} + b_hh``:
      ``dA_r = dA_n gh_n r'``; the hidden side sees ``dGh = [dA_r, dA_z, dA_n r]`` (so
      ``dW_hh = sum dGh^T h_{t-1}``, ``db_hh = sum dGh``) while the input side sees
      ``[dA_r, dA_z, dA_n]``; ``dh_{t-1} = g z + dGh W_hh``: one matmul;
    - reset="before", ``n = tanh(gx_n + W_hn (r h_{t-1}))``: ``du = dA_n W_hn`` (u = r h),
      ``dA_r = du h_{t-1} r'``, ``dh_{t-1} = g z + du r + [dA_r, dA_z] W_hrz``: the step's
      matmul split in two, as the gradient of r needs ``du`` first; ``dW_hn = sum dA_n^T u``.
    """

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0, mask, reset, hard):
        after = reset == "after"
        gx = _project(x, w_ih, b_ih if after else sum_biases(b_ih, b_hh))  # (T, B, 3H)
        steps, hidden = gx.shape[0], h0.shape[1]
        rz = gx[:, :, : 2 * hidden]  # (T, B, 2H): overwritten with r, z step by step
        ns = gx[:, :, 2 * hidden :]  # (T, B, H): overwritten with n
        hs = x.new_empty(steps + 1, *h0.shape)
        hs[0] = h0
        new_h = torch.empty_like(h0) if mask is not None else None
        if after:  # gh_t = W_hh h_{t-1} + b_hh, kept: dA_r needs gh_n
            extra = x.new_empty(steps, h0.shape[0], 3 * hidden)
        else:  # u_t = r * h_{t-1}, kept: dW_hn needs it
            extra = torch.empty_like(ns)
        for t in range(steps):
            h = hs[t]
            if after:
                gh = extra[t].copy_(linear(h, w_hh))
                if b_hh is not None:
                    gh += b_hh
                r, z = _gate(rz[t].add_(gh[:, : 2 * hidden]), hard).chunk(2, 1)
                n = ns[t].addcmul_(r, gh[:, 2 * hidden :]).tanh_()
            else:
                r, z = _gate(rz[t].add_(linear(h, w_hh[: 2 * hidden])), hard).chunk(2, 1)
                u = torch.mul(r, h, out=extra[t])
                n = ns[t].add_(linear(u, w_hh[2 * hidden :])).tanh_()
            h_new = torch.addcmul(n, z, h - n, out=hs[t + 1] if mask is None else new_h)
            if mask is not None:
                torch.where(mask[t], h_new, h, out=hs[t + 1])
        out = hs[1:] if mask is None else hs[1:] * mask
        ctx.save_for_backward(x, w_ih, w_hh, gx, extra, hs, mask)
        ctx.reset, ctx.hard = reset, hard
        ctx.mark_non_differentiable(*(() if mask is None else (mask,)))
        return out.clone() if mask is None else out, hs[-1].clone()

    @staticmethod
    def backward(ctx, grad_out, grad_h):
        x, w_ih, w_hh, gates, extra, hs, mask = ctx.saved_tensors
        hidden, after = hs.shape[-1], ctx.reset == "after"
        r, z, n = gates.chunk(3, 2)  # (T, B, H) each
        h_prev = hs[:-1]
        coef_n = (1 - z) * (1 - n * n)  # dA_n / g
        coef_z = (h_prev - n) * _gate_derivative(z, ctx.hard)  # dA_z / g
        # dA_r / dA_n (after: gh_n r') or dA_r / du (before: h_{t-1} r')
        coef_r = (extra[:, :, 2 * hidden :] if after else h_prev) * _gate_derivative(r, ctx.hard)
        m, keep = _masked(mask, gates.dtype)
        if m is not None:
            coef_n, coef_z, coef_r, grad_out = coef_n * m, coef_z * m, coef_r * m, grad_out * m
            z = z * m + keep  # a padded step passes dh through unchanged
        dA = torch.empty_like(gates)  # (T, B, 3H): the input side's [dA_r, dA_z, dA_n]
        dGh = torch.empty_like(gates) if after else None  # the hidden side's
        w_t = w_hh.t().contiguous()  # (H, 3H)
        w_rz_t, w_n_t = (w_hh[: 2 * hidden].t().contiguous(), w_hh[2 * hidden :].t().contiguous())
        dh = grad_h
        for t in reversed(range(gates.shape[0])):
            g = dh + grad_out[t]
            d_n = torch.mul(g, coef_n[t], out=dA[t, :, 2 * hidden :])
            if after:
                torch.mul(d_n, coef_r[t], out=dGh[t, :, :hidden])
                torch.mul(g, coef_z[t], out=dGh[t, :, hidden : 2 * hidden])
                torch.mul(d_n, r[t], out=dGh[t, :, 2 * hidden :])
                dh = linear(dGh[t], w_t).addcmul_(g, z[t])
            else:
                du = linear(d_n, w_n_t)  # (B, H): dA_n W_hn
                torch.mul(du, coef_r[t], out=dA[t, :, :hidden])
                torch.mul(g, coef_z[t], out=dA[t, :, hidden : 2 * hidden])
                dh = linear(dA[t, :, : 2 * hidden], w_rz_t).addcmul_(g, z[t]).addcmul_(du, r[t])
        if after:
            dA[:, :, : 2 * hidden] = dGh[:, :, : 2 * hidden]
            return *_linear_grads(ctx, dA, x, w_ih, dGh, h_prev), dh, None, None, None
        dx, dw_ih, _, db_ih, db_hh = _linear_grads(ctx, dA, x, w_ih, dA, None)
        dw_hh = None
        if ctx.needs_input_grad[2]:  # W_hrz meets h_{t-1}; W_hn meets u = r h_{t-1}
            rows, h_rows, u_rows = dA.flatten(0, 1), h_prev.flatten(0, 1), extra.flatten(0, 1)
            dw_rz = linear(rows[:, : 2 * hidden].t(), h_rows.t())  # (2H, H)
            dw_hh = torch.cat([dw_rz, linear(rows[:, 2 * hidden :].t(), u_rows.t())])
        return dx, dw_ih, dw_hh, db_ih, db_hh, dh, None, None, None


def run_direction(
    step: Step, w: CellWeights, x: Tensor, state: State, mask: Tensor | None
) -> tuple[Tensor, State]:
    """One layer, one direction, as ``recurrence.run_direction``: x (T, B, I), state tuple of
    (B, H), mask (T, B, 1) bool or None -> outputs (T, B, H), final state."""
    device = x.device.type
    if torch.is_autocast_enabled(device):  # run in the autocast dtype, as a fused kernel does
        dtype = torch.get_autocast_dtype(device)
        x, state = x.to(dtype), tuple(s.to(dtype) for s in state)
        w = CellWeights(*(None if p is None else p.to(dtype) for p in w))
    with torch.autocast(device, enabled=False):
        if isinstance(step, RNNStep):
            out, h = RNNSequence.apply(x, *w[:4], state[0], mask, step.nonlinearity)
            return out, (h,)
        if isinstance(step, LSTMStep):
            out, h, c = LSTMSequence.apply(x, *w[:4], w.weight_ch, *state, mask)
            return out, (h, c)
        if isinstance(step, GRUStep):
            out, h = GRUSequence.apply(
                x, *w[:4], state[0], mask, step.reset, step.gate == "hard_sigmoid"
            )
            return out, (h,)
    raise TypeError(f"no hand-written BPTT for {step}")
