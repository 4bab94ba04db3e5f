"""Which tokens a run trains and validates on, and which tokenizer reads them.

* no ``--data``: the embedded corpus (the Python stdlib), prepared once into ``data_dir``;
* ``--data DIR`` with ``train.bin``: that file, ``val.bin`` beside it, ``tokenizer.json`` beside it;
* ``--data FILE.bin`` or a directory of shards: those; validation from ``--val-data``, or else the
  last 5% of the training tokens held out.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import corpus
from .tokenizer import default_data_ready, prepare_data
from .tokens import TokenFile, max_token, open_tokens, shard_paths, split_tail

HOLDOUT_FRACTION = 0.05


@dataclass
class Datasets:
    train: list[TokenFile]
    val: list[TokenFile]
    train_path: str
    val_path: str              # a path, or a description of the held-out tail
    tokenizer_path: str | None
    max_token_train: int       # the largest id in each split (the vocabulary check names the file at fault)
    max_token_val: int
    meta: dict                 # the prepared data's meta.json, when there is one
    val_is_file: bool = False  # validation tokens came from their own file (--val-data or val.bin)

    @property
    def max_token(self) -> int:
        return max(self.max_token_train, self.max_token_val)

    def fingerprint(self) -> str:
        """A short hash of the training and validation tokens (sizes plus the first and last 64K tokens of
        each file), stored in checkpoints so a resume onto other data can say so."""
        h = hashlib.sha1()
        for f in self.train + self.val:
            h.update(str(len(f)).encode())
            h.update(np.ascontiguousarray(f.tokens[:65536]).tobytes())
            h.update(np.ascontiguousarray(f.tokens[-65536:]).tobytes())
        return h.hexdigest()[:16]


def default_source() -> str:
    return "python-stdlib " + corpus.describe()


def ensure_default_data(data_dir: str, vocab_size: int, log: Callable[[str], None] = print) -> str:
    """Prepare the embedded corpus in ``data_dir`` unless it is already there for this vocab size."""
    source = default_source()
    if default_data_ready(data_dir, vocab_size, source):
        log(f"using the prepared default corpus in {data_dir}/ (vocab {vocab_size})")
        return data_dir
    log(f"first run: preparing the default corpus, {corpus.describe()}, into {data_dir}/")
    prepare_data(corpus.stdlib_documents(), vocab_size, data_dir, source=source, log=log)
    return data_dir


def _tokenizer_beside(path: str) -> str | None:
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    cand = os.path.join(folder, "tokenizer.json")
    return cand if os.path.isfile(cand) else None


def _read_meta(path: str) -> dict:
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    try:
        with open(os.path.join(folder, "meta.json")) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}


def open_datasets(train_path: str, val_path: str | None, seq_len: int) -> Datasets:
    """Open and check the token files for windows of ``seq_len + 1`` tokens. The vocabulary check
    is the caller's (it names the config key); ``max_token`` is reported for it."""
    window = seq_len + 1
    train = open_tokens(train_path, window)
    if val_path is None and os.path.isdir(train_path) and os.path.isfile(os.path.join(train_path, "val.bin")):
        val_path = os.path.join(train_path, "val.bin")
    if val_path is not None:
        val = open_tokens(val_path, window)
        val_desc = val_path
    else:
        train, val = split_tail(train, HOLDOUT_FRACTION, window)
        val_desc = f"the last {HOLDOUT_FRACTION:.0%} of {train_path}"
    top_train, top_val = max(max_token(f.tokens) for f in train), max(max_token(f.tokens) for f in val)
    return Datasets(train, val, train_path, val_desc, _tokenizer_beside(train_path), top_train, top_val,
                    _read_meta(train_path), val_is_file=val_path is not None)


def describe_files(files: list[TokenFile]) -> str:
    n = sum(len(f) for f in files)
    return f"{n:,} tokens in {len(files)} file{'s' if len(files) != 1 else ''}"


__all__ = ["Datasets", "ensure_default_data", "open_datasets", "describe_files", "shard_paths"]
