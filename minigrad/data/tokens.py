"""Token files: flat arrays of little-endian uint32 token ids (Oxidizr's ``.bin`` format).

A dataset is one ``.bin`` file or a directory of ``.bin`` shards. Files are memory-mapped, so a
dataset larger than RAM costs nothing to open; each is checked on open (size a multiple of 4, at
least one training window of tokens, every id below the vocabulary size) and a bad one gets a
:class:`DataError` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKEN_DTYPE = np.dtype("<u4")  # u32 little-endian, whatever the machine's byte order
_CHUNK = 1 << 24  # tokens scanned at a time when looking for the largest id


class DataError(ValueError):
    """A token file is missing or malformed; the message names the file."""


@dataclass
class TokenFile:
    path: str
    tokens: np.ndarray  # a read-only memmap (or an in-memory slice of one) of uint32

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def shard_paths(path: str) -> list[str]:
    """The .bin files a dataset path stands for: the file itself, or a directory's shards sorted.
    A directory holding train.bin means that file (val.bin beside it is the validation set)."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory")
    if p.is_file():
        return [str(p)]
    if not p.is_dir():  # a FIFO, a socket or a device such as /dev/zero: no size to map
        raise DataError(f"{path}: is not a regular file or a directory, expected .bin token files")
    if (p / "train.bin").is_file():
        return [str(p / "train.bin")]
    shards = sorted(str(q) for q in p.glob("*.bin") if q.name != "val.bin" and q.is_file())
    if not shards:
        raise DataError(f"{path}: directory holds no .bin token files")
    return shards


def open_token_file(path: str) -> TokenFile:
    """Memory-map one token file, checking that its size is a whole number of tokens."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    if size % TOKEN_DTYPE.itemsize:
        raise DataError(f"{path}: size {size} bytes is not a multiple of 4, so it is not a file of u32 tokens")
    if size == 0:
        raise DataError(f"{path}: file is empty")
    try:
        return TokenFile(path, np.memmap(path, dtype=TOKEN_DTYPE, mode="r"))
    except OSError as e:  # no read permission, an unreadable device
        raise DataError(f"{path}: cannot read the token file ({e.strerror})") from None


def max_token(tokens: np.ndarray) -> int:
    """The largest id, scanned in chunks so a huge memmap is not read into memory at once."""
    best = 0
    for start in range(0, len(tokens), _CHUNK):
        best = max(best, int(tokens[start:start + _CHUNK].max()))
    return best


def open_tokens(path: str, window: int, vocab_size: int | None = None) -> list[TokenFile]:
    """Open a dataset (a file or a directory of shards) for windows of ``window`` tokens
    (seq_len + 1: inputs plus the shifted targets). With ``vocab_size``, ids are checked too."""
    files = [open_token_file(p) for p in shard_paths(path)]
    for f in files:
        if not os.path.isfile(f.path):
            raise DataError(f"{f.path}: is not a regular file, expected u32 tokens")
        if len(f) < window:
            raise DataError(f"{f.path}: holds {len(f)} tokens, fewer than one training window of {window} "
                            f"(seq_len + 1); use a shorter --seq-len or more data")
        if vocab_size is not None:
            top = max_token(f.tokens)
            if top >= vocab_size:
                raise DataError(f"{f.path}: token id {top} is not below vocab_size {vocab_size}")
    return files


def split_tail(files: list[TokenFile], fraction: float, window: int) -> tuple[list[TokenFile], list[TokenFile]]:
    """Hold out the last ``fraction`` of the tokens (at least one window) for validation."""
    total = sum(len(f) for f in files)
    n_val = max(window, int(total * fraction))
    if total - n_val < window:
        raise DataError(f"{files[-1].path}: {total} tokens are too few to hold out a validation window "
                        f"of {window} and still train; pass --val-data")
    train, val, remaining = [], [], n_val
    for f in reversed(files):
        take = min(remaining, len(f))
        if take and len(f) - take < window:  # keep no sliver shorter than a window
            take = len(f)
        remaining -= take
        if take:
            val.insert(0, TokenFile(f.path + f"[{len(f) - take}:]", f.tokens[len(f) - take:]))
        if take < len(f):
            train.insert(0, TokenFile(f.path + (f"[:{len(f) - take}]" if take else ""), f.tokens[:len(f) - take]))
    return train, val


def write_tokens(path: str, ids: np.ndarray) -> None:
    """Write ids as u32 little-endian, to a temporary name first so a crash leaves no half file."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.uint32).max):
        raise ValueError(f"{path}: token ids must fit in u32")
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(ids.astype(TOKEN_DTYPE).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def unigram_entropy(files: list[TokenFile] | np.ndarray) -> float:
    """Entropy in nats of the token frequencies: the loss of the best model that ignores context,
    the bar a trained model's validation loss should be well below."""
    arrays = [files] if isinstance(files, np.ndarray) else [f.tokens for f in files]
    counts = np.zeros(0, dtype=np.int64)
    for a in arrays:
        for start in range(0, len(a), _CHUNK):
            c = np.bincount(a[start:start + _CHUNK])
            if len(c) > len(counts):
                c[:len(counts)] += counts
                counts = c
            else:
                counts[:len(c)] += c
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
