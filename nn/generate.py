"""Text generation with a cache (each layer's keys/values or recurrent state: ``nn/cache.py``), and the
sampling rules (temperature, top-k, top-p)."""

from __future__ import annotations

import numpy as np

import minigrad as mg
from minigrad import Tensor


def sample_next(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
                rng: mg.Generator) -> np.ndarray:
    """Pick one token per row of host logits (B, V). temperature 0 means greedy."""
    if temperature <= 0:
        return logits.argmax(axis=-1)
    z = logits.astype(np.float64) / temperature
    if top_k is not None and 0 < top_k < z.shape[-1]:
        kth = np.partition(z, -top_k, axis=-1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    if top_p is not None and 0 < top_p < 1:
        order = np.argsort(-p, axis=-1)
        sorted_p = np.take_along_axis(p, order, axis=-1)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        drop = np.cumsum(sorted_p, axis=-1) - sorted_p >= top_p
        sorted_p[drop] = 0
        p = np.zeros_like(p)
        np.put_along_axis(p, order, sorted_p, axis=-1)
        p /= p.sum(axis=-1, keepdims=True)
    u = rng.random((p.shape[0], 1))
    return np.minimum((np.cumsum(p, axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)


def generate(model, ids, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, seed: int = 0, use_cache: bool = True) -> np.ndarray:
    """Extend ``ids`` (B, T) by ``max_new_tokens`` tokens; returns host int64 (B, T + new)."""
    cfg = model.config
    be = model.backend
    seq = np.asarray(ids.numpy() if isinstance(ids, Tensor) else ids, dtype=np.int64)
    if seq.ndim == 1:
        seq = seq[None]
    if seq.shape[1] + max_new_tokens > cfg.max_seq_len:
        raise ValueError(f"prompt ({seq.shape[1]}) + max_new_tokens ({max_new_tokens}) exceeds "
                         f"model.max_seq_len ({cfg.max_seq_len})")
    rng = mg.Generator(seed)
    was_training = model.training
    model.eval()
    cache = model.new_cache(batch=seq.shape[0]) if use_cache else None
    with mg.no_grad():
        feed = seq
        for _ in range(max_new_tokens):
            logits = model(Tensor(feed, backend=be), cache)               # (B, t, V)
            nxt = sample_next(logits.numpy()[:, -1], temperature, top_k, top_p, rng)
            seq = np.concatenate([seq, nxt[:, None].astype(np.int64)], axis=1)
            feed = seq[:, -1:] if use_cache else seq
    model.train(was_training)
    return seq


def generate_text(model, tokenizer, prompt: str, max_new_tokens: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, seed: int = 0, log=print) -> str:
    """Continue ``prompt`` (after an end-of-text token, as documents start in training) and decode.
    Generation stops at an end-of-text token, or when the model's max_seq_len is reached."""
    from minigrad.config import ConfigError
    from minigrad.data.tokenizer import EOT

    eot = tokenizer.token_to_id(EOT)
    ids = ([eot] if eot is not None else []) + tokenizer.encode(prompt, add_special_tokens=False).ids
    room = model.config.max_seq_len - len(ids)
    if room <= 0:
        raise ConfigError(f"the prompt is {len(ids)} tokens, no room left within max_seq_len "
                          f"{model.config.max_seq_len}")
    if max_new_tokens > room:
        log(f"note: generating {room} tokens, all that fit in max_seq_len {model.config.max_seq_len}")
        max_new_tokens = room
    out = generate(model, np.array([ids], dtype=np.int64), max_new_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, seed=seed)[0, len(ids):].tolist()
    if eot is not None and eot in out:
        out = out[:out.index(eot)]
    return prompt + tokenizer.decode(out)


def check_sampling(max_new_tokens: int, temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Refuse sampling settings that would be silently ignored or meaningless (named as train.py's flags)."""
    import math

    from minigrad.config import ConfigError

    bad = []
    if max_new_tokens < 0:
        bad.append(f"--max-new-tokens {max_new_tokens}: must be 0 or more")
    if not (math.isfinite(temperature) and temperature >= 0):
        bad.append(f"--temperature {temperature}: must be a finite number >= 0 (0 = greedy)")
    if top_k is not None and top_k < 1:
        bad.append(f"--top-k {top_k}: must be at least 1")
    if top_p is not None and not 0 < top_p <= 1:
        bad.append(f"--top-p {top_p}: must be in (0, 1]")
    if bad:
        raise ConfigError("; ".join(bad))
