"""The one list of kernel names, each with its contract.

Every kernel has a reference (``kernels/reference``): ``fn(xp, *arrays, ...)``, written against
``xp`` only, the spec. A backend may also have a fast twin (``kernels/cpu`` for "numba"):
``fn(*arrays, ...)`` on that backend's own arrays, no ``xp``, same results to rounding. A fast
kernel that does not handle a case (a dtype, a memory layout, an argument value) returns
``NotImplemented`` before it writes anything, and the reference runs instead. Callers get
``backend.kernel(name)`` with ``xp`` already bound.

Shapes: Bt batch, T steps, C or D channels, K conv taps, N state size, H heads of P channels,
G groups of heads sharing B and C, R ranks per step (Mamba3 MIMO; 1 otherwise), Q chunk length.
"""

from __future__ import annotations

CONTRACTS: dict[str, str] = {
    "causal_conv1d_forward":
        "(x (Bt, T, C), w (C, K), bias (C,) or None, silu) -> y (Bt, T, C): depthwise causal conv, "
        "y[t] = bias + sum_k w[:, k] x[t - K + 1 + k] (zeros before t = 0), then SiLU if silu",
    "causal_conv1d_backward":
        "(g (Bt, T, C), x, w, bias, silu) -> dx (Bt, T, C), dw (C, K), dbias (C,) or None",
    "selective_scan_forward":
        "(u (Bt, T, D), delta (Bt, T, D), A (D, N), B (Bt, T, N), C (Bt, T, N), h0 (Bt, D, N) or None, chunk) "
        "-> y (Bt, T, D), h_T (Bt, D, N), starts (Bt, ceil(T / chunk), D, N): h_t = exp(delta_t A) h_{t-1} "
        "+ delta_t u_t B_t, y_t = h_t . C_t; starts[:, c] is the state before step c * chunk",
    "selective_scan_backward":
        "(g (Bt, T, D), u, delta, A, B, C, starts, chunk) -> du, ddelta (Bt, T, D), dA (D, N), dB, dC (Bt, T, N)",
    "ssd_forward":
        "(x (Bt, T, R, H, P), a (Bt, T, H), B (Bt, T, R, G, N), C (Bt, T, R, G, N), chunk, h0 (Bt, H, P, N) "
        "or None) -> y (Bt, T, R, H, P), H_T (Bt, H, P, N), starts (Bt, ceil(T / chunk), H, P, N): "
        "H_t = exp(a_t) H_{t-1} + sum_r x_t[r] B_t[r]^T, y_t[r] = H_t C_t[r], head h using group h // (H / G); "
        "starts[:, c] is the state before step c * chunk",
    "ssd_backward":
        "(g (Bt, T, R, H, P), x, a, B, C, chunk, starts) -> dx (Bt, T, R, H, P), da (Bt, T, H), "
        "dB, dC (Bt, T, R, G, N)",
}

NAMES: frozenset[str] = frozenset(CONTRACTS)
