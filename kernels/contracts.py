"""The one list of kernel names, each with its contract.

Every kernel has a reference (``kernels/reference``): ``fn(xp, *arrays, ...)``, written against
``xp`` only, the spec. A backend may also have a fast twin (``kernels/cpu`` for "numba"):
``fn(*arrays, ...)`` on that backend's own arrays, no ``xp``, same results to rounding. A fast
kernel that does not handle a case (a dtype, a memory layout, an argument value) returns
``NotImplemented`` before it writes anything, and ``Backend.kernel`` then runs the reference
with the same arguments. Callers get ``backend.kernel(name)`` with ``xp`` already bound:

    y, rstd = x.backend.kernel("rms_norm_forward")(x, w, eps)

Shapes below use B batch, T queries, S keys, H query heads, KV key/value heads (H = KV * G),
D head or feature size, N rows, C classes, V table rows; for the Mamba kernels, Bt batch, T steps,
C or D channels, K conv taps, N state size, H heads of P channels, G groups of heads sharing B and C,
R rank-one inputs per step (Mamba3 MIMO; 1 otherwise), and a chunk of Q steps. "In place" means the kernel writes
into the arrays it is given (and returns as stated); everything else allocates its outputs.
The tests hold every backend's table to this list (tests/test_kernel_tables.py).
"""

from __future__ import annotations

CONTRACTS: dict[str, str] = {
    "rms_norm_forward":
        "(x (..., D), w (D,), eps) -> y (..., D), rstd (..., 1): y = x * rstd * w, "
        "rstd = 1 / sqrt(mean(x^2, last axis) + eps), both in x's dtype",
    "rms_norm_backward":
        "(g (..., D), x (..., D), w (D,), rstd (..., 1)) -> dx (..., D), dw (D,)",
    "rope_forward":
        "(x (B, T, H, D), cos (T, D), sin (T, D)) -> (B, T, H, D): x * cos + rotate_half(x) * sin, "
        "rotate_half(x1, x2) = (-x2, x1) over the two halves of D",
    "rope_backward":
        "(g (B, T, H, D), cos (T, D), sin (T, D)) -> dx (B, T, H, D): the transposed rotation",
    "swiglu_forward":
        "(gate (..., F), up (..., F), out=None) -> silu(gate) * up (..., F); "
        "with out= it is written into out (which may be a strided view) and out is returned",
    "swiglu_backward":
        "(g, gate, up (..., F), out=None) -> dgate, dup (..., F); "
        "with out=(dgate, dup) they are written into those arrays (views of one buffer) and returned",
    "attention_forward":
        "(q (B, T, H, D), k (B, S, KV, D), v (B, S, KV, Dv), scale, offset) -> out (B, T, H, Dv), saved: "
        "causal softmax(q k^T * scale) v, query i sees keys 0..offset+i; Dv may differ from D (MLA); saved is what "
        "attention_backward reads: the reference saves P (B, KV, G, T, S), zero where masked; a fast kernel may "
        "save a state of its own instead (the Numba and CUDA twins save each row's log-sum-exp: SAVED_STATE below)",
    "attention_backward":
        "(g (B, T, H, Dv), q, k, v, saved from forward, scale, offset=0) -> dq (B, T, H, D), dk (B, S, KV, D), "
        "dv (B, S, KV, Dv)",
    "softmax_cross_entropy":
        "(logits (N, C), targets (N,) int, ignore_index) -> loss_sum (0-d), n_valid (int), "
        "dlogits (N, C) = d loss_sum / d logits; ignored rows add 0 and get 0 gradient; "
        "a target out of [-C, C) (not ignored) raises IndexError; float16/bfloat16 logits are computed in "
        "float32, loss_sum is float32 and dlogits has the logits' dtype",
    "index_add":
        "(out, key, src) -> out: out[key] += src in place, repeated indices adding up in key order "
        "(as xp.add.at); key is any NumPy index (an int array, a tuple of arrays and slices)",
    "erf":
        "(x) -> erf(x) elementwise, same shape and dtype as x, accurate to a few ulp of its dtype",
    "adamw_step":
        "(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps, wd, step) -> None: one AdamW step "
        "(minigrad/optim/adamw.py), updating param, exp_avg, exp_avg_sq in place; grad is only read",
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
    "adamw_step_multi":
        "(params, grads, exp_avgs, exp_avg_sqs (lists), lr, beta1, beta2, eps, wd, step, grad_scale=1.0, "
        "copies=None) -> None: adamw_step on every parameter of the lists (a fused kernel: one launch), each "
        "gradient read as grad * grad_scale in the parameter's dtype; with copies (a list of arrays like the "
        "params, of another float dtype), each new value is also written, rounded, into its copy. "
        "AdamW uses it when a backend has its own twin (mixed precision: float32 masters, float16 model)",
    # Mixture-of-Experts routing. N tokens, E experts, k experts per token; slot n * k + j is token n's j-th
    # choice; M kept slots; int arrays are int64.
    "moe_topk":
        "(scores (N, E), k, n_group=1, topk_group=1, group_score='max'|'top2') -> idx (N, k): each token's "
        "k best experts, best first, ties to the lower index; with n_group > 1 and topk_group < n_group only "
        "experts of the topk_group best groups (group score: its max, or the sum of its two best) are chosen",
    "moe_sort_by_expert":
        "(idx (N, k), num_experts, capacity=-1) -> order (M,), offsets (E+1,), slot_row (N, k), load (E,): "
        "kept slots grouped by expert in slot order, expert e's rows offsets[e]:offsets[e+1], each slot's row "
        "(-1 if dropped), slots per expert before dropping; capacity >= 0 keeps each expert's first capacity",
    "moe_gather":
        "(x (N, H), order (M,), k) -> xs (M, H) = x[order // k]",
    "moe_gather_backward":
        "(dxs (M, H), slot_row (N, k)) -> dx (N, H): per token, the sum over its kept slots of dxs[row]",
    "moe_combine":
        "(ys (M, H), slot_row (N, k), weights (N, k)) -> out (N, H) = sum_j weights[n, j] ys[slot_row[n, j]] "
        "over kept slots",
    "moe_combine_backward":
        "(g (N, H), ys (M, H), slot_row, weights (N, k)) -> dys (M, H), dweights (N, k) (0 for dropped slots)",
    # Generic ops, for the numba backend's threaded twins: the ops call these only on arrays of at least
    # Backend.kernel_min_size elements (minigrad/ops; softmax and log_softmax from row_kernel_min_size, 0 on
    # numba); below that, and on other backends, NumPy's own call runs.
    "add": "(a, b) -> a + b, broadcasting as NumPy does",
    "sub": "(a, b) -> a - b, broadcasting as NumPy does",
    "mul": "(a, b) -> a * b, broadcasting as NumPy does",
    "div": "(a, b) -> a / b, broadcasting as NumPy does",
    "exp": "(a) -> exp(a) elementwise",
    "log": "(a) -> log(a) elementwise",
    "tanh": "(a) -> tanh(a) elementwise",
    "sigmoid": "(a) -> 1 / (1 + exp(-a)) elementwise, computed as 0.5 (1 + tanh(a / 2)) (no overflow)",
    "silu_forward": "(a, keep_sigmoid=True) -> (a * s, s), s = sigmoid(a) (None instead when not keep_sigmoid)",
    "tanh_backward": "(g, y) -> g * (1 - y^2), y = tanh(a), all one shape",
    "sigmoid_backward": "(g, y) -> g * y * (1 - y), y = sigmoid(a), all one shape",
    "silu_backward": "(g, a, s) -> g * s * (1 + a * (1 - s)), s = sigmoid(a), all one shape",
    "sum": "(a, axes (sorted tuple of non-negative ints), keepdims=False) -> a.sum(axis=axes, keepdims=keepdims)",
    "max": "(a, axes, keepdims=False) -> a.max(axis=axes, keepdims=keepdims), NaN where a slice holds a NaN",
    "relu": "(a) -> a where a > 0, else 0 (a NaN stays NaN)",
    "relu_backward": "(g, y = relu(a)) -> g where y > 0, else 0",
    "gelu": "(a, tanh_approx=False) -> a Phi(a) (Phi the normal CDF), or its tanh approximation",
    "gelu_backward": "(g, a, tanh_approx=False) -> g (Phi(a) + a phi(a)), or the tanh form's derivative",
    "softmax_forward": "(x (..., C)) -> y (..., C): softmax over the last axis (its max subtracted first)",
    "softmax_backward": "(g, y (..., C)) -> dx = y * (g - sum(g * y, last axis))",
    "log_softmax_forward": "(x (..., C)) -> y (..., C): log_softmax over the last axis",
    "log_softmax_backward": "(g, y (..., C)) -> dx = g - exp(y) * sum(g, last axis)",
}

SAVED_STATE = """A forward kernel's saved state (attention_forward's ``saved``) belongs to that kernel's backward.
A fast forward may save something other than the reference's P: the CUDA one saves its output and
each query row's log-sum-exp (a ``kernels.cuda.attention.FlashState``), the Numba one the log-sum-exp
and its offset (a ``kernels.cpu.attention.LseState``); neither stores the (T, S) matrix. So that the
fallback stays right: a fast backward handed a saved state it does not know
(the reference's P, because the fast forward declined the case) returns NotImplemented, and the
reference backward reads P; a fast backward handed its own state never declines."""

NAMES: frozenset[str] = frozenset(CONTRACTS)
