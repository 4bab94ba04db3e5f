"""The routed experts of a Mixture-of-Experts layer as one fused op: dispatch each token to its
experts, run every expert's SwiGLU on its own rows, and add the outputs back weighted by the router.

    xs = x[token of each kept slot]              (M, H)    rows sorted by expert: moe_gather
    ys[rows of e] = down_e(silu(gate_e(xs)) * up_e(xs))    one BLAS product per expert and matrix
    out[n] = sum_j weights[n, j] * ys[row of slot (n, j)]  moe_combine

Expert weights use transformers' fused layout: gate_up (E, 2I, H) is [gate; up] stacked on the rows,
down (E, H, I). The routing (which expert, which row) is decided beforehand by ``plan_dispatch``
and is not differentiated; the gradient reaches the router through ``weights``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minigrad import Function, Tensor


@dataclass
class DispatchPlan:
    """Where each (token, choice) slot goes: see ``moe_sort_by_expert`` in kernels/reference/moe_routing.py."""

    order: Any          # (M,) slot id of each row of the expert-sorted buffer
    slot_row: Any       # (N, k) row of each slot, -1 if dropped
    load: Any           # (E,) slots routed to each expert, dropped ones included
    spans: list         # host [(start, stop)] rows of each expert

    @property
    def kept(self) -> int:
        return self.spans[-1][1] if self.spans else 0


def plan_dispatch(backend, idx, num_experts: int, capacity: int = -1) -> DispatchPlan:
    """The plan for expert choices ``idx`` (N, k), each expert keeping at most ``capacity`` slots (< 0: all)."""
    order, offsets, slot_row, load = backend.kernel("moe_sort_by_expert")(idx, num_experts, capacity)
    bounds = [int(v) for v in backend.to_numpy(offsets)]  # host ints: the per-expert loop's slices
    return DispatchPlan(order, slot_row, load, list(zip(bounds[:-1], bounds[1:])))


class RoutedExperts(Function):
    def forward(self, x, weights, gate_up, down, plan: DispatchPlan):
        xp, inner = self.xp, down.shape[2]
        xs = self.backend.kernel("moe_gather")(x, plan.order, weights.shape[1])       # (M, H)
        gu = xp.empty((xs.shape[0], 2 * inner), dtype=x.dtype)                         # (M, 2I): [gate | up]
        hidden = xp.empty((xs.shape[0], inner), dtype=x.dtype)                         # (M, I)
        ys = xp.empty_like(xs)                                                         # (M, H)
        swiglu = self.backend.kernel("swiglu_forward")
        for e, (a, b) in enumerate(plan.spans):
            if b > a:
                xp.matmul(xs[a:b], gate_up[e].T, out=gu[a:b])
                swiglu(gu[a:b, :inner], gu[a:b, inner:], out=hidden[a:b])
                xp.matmul(hidden[a:b], down[e].T, out=ys[a:b])
        self.saved = (xs, gu, hidden, ys, weights, gate_up, down, plan)
        return self.backend.kernel("moe_combine")(ys, plan.slot_row, weights)

    def backward(self, g):
        xs, gu, hidden, ys, weights, gate_up, down, plan = self.saved
        xp, inner = self.xp, down.shape[2]
        dys, dweights = self.backend.kernel("moe_combine_backward")(g, ys, plan.slot_row, weights)
        dgu, dxs = xp.empty_like(gu), xp.empty_like(xs)
        dgate_up, ddown = xp.zeros_like(gate_up), xp.zeros_like(down)  # experts that got no token: 0
        swiglu_backward = self.backend.kernel("swiglu_backward")
        for e, (a, b) in enumerate(plan.spans):
            if b > a:
                xp.matmul(dys[a:b].T, hidden[a:b], out=ddown[e])                      # (H, I)
                swiglu_backward(dys[a:b] @ down[e], gu[a:b, :inner], gu[a:b, inner:],
                                out=(dgu[a:b, :inner], dgu[a:b, inner:]))
                xp.matmul(dgu[a:b].T, xs[a:b], out=dgate_up[e])                       # (2I, H)
                xp.matmul(dgu[a:b], gate_up[e], out=dxs[a:b])                         # (rows, H)
        dx = self.backend.kernel("moe_gather_backward")(dxs, plan.slot_row) if self.needs_grad[0] else None
        return dx, dweights, dgate_up, ddown


def _check(x: Tensor, weights: Tensor, gate_up: Tensor, down: Tensor, plan: DispatchPlan) -> None:
    e, two_i, h = gate_up.shape
    if x.ndim != 2 or x.shape[1] != h or down.shape != (e, h, two_i // 2) or weights.shape != plan.slot_row.shape:
        raise ValueError(f"routed_experts: expected x (N, H), weights (N, k) and expert weights (E, 2I, H), "
                         f"(E, H, I); got x {x.shape}, weights {weights.shape}, gate_up {gate_up.shape}, "
                         f"down {down.shape}, a plan for {plan.slot_row.shape} slots")


def routed_experts(x: Tensor, weights: Tensor, gate_up: Tensor, down: Tensor, plan: DispatchPlan) -> Tensor:
    """x (N, H) through its experts, weighted by ``weights`` (N, k): (N, H)."""
    _check(x, weights, gate_up, down, plan)
    return RoutedExperts.apply(x, weights, gate_up, down, plan=plan)


def routed_experts_simple(x: Tensor, weights: Tensor, gate_up: Tensor, down: Tensor, plan: DispatchPlan) -> Tensor:
    """The same from primitive ops, one expert at a time (as transformers' DeepseekV3Experts): autograd
    derives the backward."""
    import minigrad as mg

    _check(x, weights, gate_up, down, plan)
    xp, inner = x.backend.xp, down.shape[2]
    out = mg.zeros(x.shape, dtype=x.dtype, backend=x.backend)
    for e, (a, b) in enumerate(plan.spans):
        if b == a:
            continue
        slot = plan.order[a:b]
        token, choice = slot // weights.shape[1], slot % weights.shape[1]
        gu = x[token] @ gate_up[e].T                                     # (rows, 2I)
        y = (gu[:, :inner].silu() * gu[:, inner:]) @ down[e].T           # (rows, H)
        y = y * weights[token, choice].unsqueeze(-1)
        rows = xp.broadcast_to(token[:, None], y.shape)
        out = mg.scatter_add(out, 0, Tensor._from_array(xp.ascontiguousarray(rows), x.backend), y)
    return out
