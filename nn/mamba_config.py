"""The Mamba keys of a model config, resolved into one layer's dimensions (defaults filled in), and
the checks that span them. The keys themselves are in ``nn/config.py``'s schema."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from minigrad.config import Problems

    from .config import ModelConfig

# Defaults: transformers' MambaConfig for Mamba1; Oxidizr's example configs for Mamba2 (their state and chunk
# sizes, 64 and 64, are also mamba_ssm's Mamba2 module defaults' order of magnitude for small models).
MAMBA1_DEFAULTS = {"mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2}
MAMBA2_DEFAULTS = {"mamba2_state_size": 64, "mamba2_chunk_size": 64, "mamba2_n_groups": 1, "mamba2_conv_kernel": 4,
                   "mamba2_expand": 2, "mamba2_head_dim": 64}
MAMBA3_DEFAULTS = {"mamba3_trapezoidal": True, "mamba3_complex_rope": True, "mamba3_mimo_rank": 0,
                   "mamba3_use_conv": False, "mamba3_bc_norm": True}
MAMBA2_KEYS = ("mamba2_num_heads", "mamba2_head_dim", "mamba2_state_size", "mamba2_chunk_size", "mamba2_n_groups",
               "mamba2_conv_kernel", "mamba2_expand")
# The initial step sizes dt, log-uniform in [DT_MIN, DT_MAX] (floored at DT_FLOOR), as transformers and mamba_ssm.
DT_MIN, DT_MAX, DT_FLOOR = 1e-3, 1e-1, 1e-4


@dataclass(frozen=True)
class MambaDims:
    """Everything a Mamba layer needs to know, for one family."""

    family: str                 # "mamba1", "mamba2" or "mamba3"
    hidden: int
    d_inner: int
    d_state: int
    d_conv: int
    dt_rank: int = 0            # Mamba1
    num_heads: int = 0          # Mamba2 / Mamba3
    head_dim: int = 0
    chunk: int = 64
    n_groups: int = 1
    trapezoidal: bool = False   # Mamba3's features (all off: Mamba2)
    complex_rope: bool = False
    mimo_rank: int = 0
    use_conv: bool = True
    bc_norm: bool = False

    @property
    def ranks(self) -> int:
        """Rank-one inputs per step (the R axis of the SSD kernel): 1 unless MIMO."""
        return max(1, self.mimo_rank)

    @property
    def num_angles(self) -> int:
        """Rotation angles per head: the first half of the state is rotated, in pairs (mamba_ssm's
        rope_fraction 0.5), so N / 4 of them."""
        return self.d_state // 4 if self.complex_rope else 0


def family(cfg: ModelConfig) -> str | None:
    if not cfg.mamba_layers:
        return None
    if cfg.mamba3_enabled:
        return "mamba3"
    return "mamba2" if any(getattr(cfg, k) is not None for k in MAMBA2_KEYS) else "mamba1"


def _get(cfg, name, defaults):
    v = getattr(cfg, name)
    return defaults[name] if v is None else v


def resolve(cfg: ModelConfig) -> MambaDims | None:
    """The Mamba layers' dimensions, or None without Mamba layers. Raises ValueError on keys that do not fit
    (``check`` names them first)."""
    fam = family(cfg)
    if fam is None:
        return None
    h = cfg.hidden_size
    if fam == "mamba1":
        d = _get(cfg, "mamba_expand", MAMBA1_DEFAULTS) * h
        return MambaDims("mamba1", h, d, _get(cfg, "mamba_d_state", MAMBA1_DEFAULTS),
                         _get(cfg, "mamba_d_conv", MAMBA1_DEFAULTS),
                         dt_rank=cfg.mamba_dt_rank or math.ceil(h / 16))
    d = _get(cfg, "mamba2_expand", MAMBA2_DEFAULTS) * h
    heads, head_dim = cfg.mamba2_num_heads, cfg.mamba2_head_dim
    if heads is None:
        head_dim = head_dim or MAMBA2_DEFAULTS["mamba2_head_dim"]
        heads = d // head_dim if d % head_dim == 0 else 0
    elif head_dim is None:
        head_dim = d // heads if d % heads == 0 else 0
    if not heads or not head_dim or heads * head_dim != d:
        raise ValueError(f"Mamba2 heads do not fit: hidden_size * mamba2_expand = {d}, "
                         f"mamba2_num_heads = {cfg.mamba2_num_heads}, mamba2_head_dim = {cfg.mamba2_head_dim}")
    extra = {}
    if fam == "mamba3":
        extra = {k.removeprefix("mamba3_"): _get(cfg, k, MAMBA3_DEFAULTS) for k in MAMBA3_DEFAULTS}
        extra["trapezoidal"], extra["mimo_rank"] = bool(extra["trapezoidal"]), int(extra["mimo_rank"])
    return MambaDims(fam, h, d, _get(cfg, "mamba2_state_size", MAMBA2_DEFAULTS),
                     _get(cfg, "mamba2_conv_kernel", MAMBA2_DEFAULTS), num_heads=heads, head_dim=head_dim,
                     chunk=_get(cfg, "mamba2_chunk_size", MAMBA2_DEFAULTS),
                     n_groups=_get(cfg, "mamba2_n_groups", MAMBA2_DEFAULTS), **extra)


def check(cfg: ModelConfig, problems: Problems, label) -> None:
    """Errors for Mamba keys that cannot build a layer, warnings for keys the chosen family ignores."""
    layers = cfg.mamba_layers
    bad = [i for i in layers if not 0 <= i < cfg.num_layers]
    if bad or len(set(layers)) != len(layers):
        problems.error(f"{label('mamba_layers')} = {layers} must list distinct layer indices in "
                       f"0..{cfg.num_layers - 1} (model.num_layers = {cfg.num_layers})")
    fam = family(cfg)
    if fam is None:
        return
    if fam != "mamba1":
        _check_mamba2(cfg, problems, label)
        ignored = [k for k in ("mamba_d_state", "mamba_d_conv", "mamba_expand", "mamba_dt_rank")
                   if getattr(cfg, k) is not None]
        if ignored:
            problems.warn(f"{', '.join(label(k) for k in ignored)} set, but the Mamba layers are {fam} "
                          "(mamba2_* keys are set): these Mamba1 keys do nothing")


def _check_mamba2(cfg: ModelConfig, problems: Problems, label) -> None:
    expand = _get(cfg, "mamba2_expand", MAMBA2_DEFAULTS)
    d = cfg.hidden_size * expand
    heads, head_dim = cfg.mamba2_num_heads, cfg.mamba2_head_dim
    try:
        dims = resolve(cfg)
    except ValueError:
        shown = [f"{label('hidden_size')} = {cfg.hidden_size}", f"{label('mamba2_expand')} = {expand}",
                 f"{label('mamba2_num_heads')} = {heads}", f"{label('mamba2_head_dim')} = {head_dim}"]
        problems.error(f"{', '.join(shown)}: hidden_size * mamba2_expand ({d}) must equal mamba2_num_heads * "
                       "mamba2_head_dim (a null one is derived from the other; both null: head_dim 64)")
        return
    if dims.num_heads % dims.n_groups:
        problems.error(f"{label('mamba2_n_groups')} = {dims.n_groups} does not divide the "
                       f"{dims.num_heads} Mamba2 heads (model.mamba2_num_heads)")
    if dims.complex_rope and dims.num_angles < 1:
        problems.error(f"{label('mamba3_complex_rope')}: the rotation needs model.mamba2_state_size >= 4 "
                       f"(it rotates N / 4 pairs), got {dims.d_state}")


def layer_parameters(dims: MambaDims) -> int:
    """Parameters of one Mamba block (its RMSNorm and mixer), as ``nn`` builds it."""
    h, d, n, k = dims.hidden, dims.d_inner, dims.d_state, dims.d_conv
    if dims.family == "mamba1":
        r = dims.dt_rank
        # in_proj, conv (+ bias), x_proj, dt_proj (+ bias), A_log, D, out_proj, norm
        return h * 2 * d + d * (k + 1) + d * (r + 2 * n) + (r + 1) * d + d * n + d + d * h + h
    heads, ranks = dims.num_heads, dims.ranks
    xbc = d + 2 * dims.n_groups * n * ranks
    extra = (heads if dims.trapezoidal else 0) + dims.num_angles
    count = h * (d + xbc + heads + extra) + 3 * heads + d + d * h + h     # in_proj, dt_bias/A_log/D, norms, out
    if dims.use_conv:
        count += xbc * (k + 1)
    if dims.bc_norm:
        count += 2 * n + 2 * heads * ranks * n
    if dims.mimo_rank:
        count += 2 * heads * ranks * dims.head_dim
    return count


def activation_values(dims: MambaDims, chunk_states: int = 64) -> float:
    """Numbers one Mamba block keeps per token for the backward: every intermediate of its forward (the graph
    holds them), plus the state at each chunk start (``chunk_states`` = Mamba1's checkpoint interval). Counted
    op by op from the layers; tests/test_memory.py holds it to the arrays a real graph keeps."""
    h, d, n = dims.hidden, dims.d_inner, dims.d_state
    if dims.family == "mamba1":
        # norm, in_proj, conv, x_proj, dt_proj, softplus, scan, x*D, +, gate, out_proj, residual; + chunk starts
        return 3 * h + 8 * d + dims.dt_rank + 2 * n + d * n / chunk_states
    heads, r, g = dims.num_heads, dims.ranks, dims.n_groups
    xbc = d + 2 * g * n * r
    states = heads * dims.head_dim * n / dims.chunk
    # norm, in_proj, conv, dt (+bias, softplus, *A), x*dt, ssd, x*D, +, gate, group norm (* weight), out, residual
    values = 3 * h + (d + xbc + heads) + (xbc if dims.use_conv else 0) + 3 * heads + 6 * d + states
    values += d if g > 1 else 0
    if dims.family == "mamba2":
        return values
    hn = heads * r * n                                                   # B or C per head
    if dims.bc_norm:
        values += 2 * (g * n * r + 2 * hn)                               # normed, per head, + bias
    if dims.complex_rope:
        a = dims.num_angles
        values += 5 * heads * a + 2 * (10 * heads * r * a + hn)          # angles; both rotations (pairs, cat)
    if dims.trapezoidal:
        values += 5 * heads + heads * r * r + 4 * d * r                  # lambda weights; the look-back correction
    if dims.mimo_rank:
        values += 5 * d * r                                              # lifted inputs, outputs, mixing
    return values
