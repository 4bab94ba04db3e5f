"""Optimizers, gradient clipping and learning-rate schedules.

    opt = minigrad.optim.AdamW(minigrad.optim.decay_groups(model.named_parameters(), 0.1), lr=3e-4)
    loss.backward()
    minigrad.optim.clip_grad_norm_(model.parameters(), 1.0)
    opt.step(); opt.zero_grad()
"""

from .adamw import AdamW
from .amp import LossScaler, MixedPrecision
from .clip import clip_grad_norm_, grad_norm
from .lion import Lion
from .lr_schedule import lr_at, set_lr
from .muon import Muon, MuonWithAdamW, newton_schulz5
from .optimizer import Optimizer
from .param_groups import decay_groups

__all__ = ["Optimizer", "AdamW", "LossScaler", "MixedPrecision", "Lion", "Muon", "MuonWithAdamW", "newton_schulz5",
           "clip_grad_norm_", "grad_norm", "decay_groups", "lr_at", "set_lr"]
