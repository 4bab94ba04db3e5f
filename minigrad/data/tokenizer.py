"""Byte-level BPE tokenizers (HF ``tokenizers``) and turning text into token files.

``prepare_data`` is what ``python train.py prepare-data`` and the default run's first start do:
train a byte-level BPE on the documents, encode each document followed by an end-of-text token,
and write ``tokenizer.json``, ``train.bin``, ``val.bin`` (u32 little-endian) and ``meta.json``.
Byte-level means any text, in any language or encoding quirk, maps to tokens without an
unknown token: the 256 byte values are the alphabet and merges are learned on top.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from .tokens import DataError, unigram_entropy, write_tokens

EOT = "<|endoftext|>"  # separates documents; id 0
MIN_VOCAB = 257        # 256 byte tokens plus EOT
VAL_EVERY = 20         # one document in 20 goes to validation (5%)
FAR_BELOW = 0.9        # a corpus yielding under 90% of the asked vocabulary is refused (a small shortfall is noted)


def new_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Learn ``vocab_size - 257`` BPE merges over the byte alphabet from ``texts``."""
    from tokenizers import pre_tokenizers, trainers

    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size {vocab_size} is too small: a byte-level BPE needs at least {MIN_VOCAB} "
                         "(256 bytes + end-of-text)")
    tok = new_tokenizer()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def load_tokenizer(path: str):
    from tokenizers import Tokenizer

    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises a plain Exception on a bad file
        raise DataError(f"{path}: cannot read tokenizer: {e}") from None


def transformers_tokenizer_files(tok, max_len: int) -> dict[str, dict]:
    """tokenizer_config.json and special_tokens_map.json that let transformers' ``AutoTokenizer`` load our
    tokenizer.json as it is (a ``PreTrainedTokenizerFast``, the tokenizers-backed class). ``<|endoftext|>``
    is bos, eos and unk, as in GPT-2's byte-level BPE; encoding adds no special tokens, as ours does not."""
    special = {k: EOT for k in ("bos_token", "eos_token", "unk_token")} if tok.token_to_id(EOT) is not None else {}
    added = {str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
                      "single_word": t.single_word, "special": t.special}
             for i, t in sorted(tok.get_added_tokens_decoder().items())}
    config = {"tokenizer_class": "PreTrainedTokenizerFast", **special, "added_tokens_decoder": added,
              "model_max_length": max_len, "clean_up_tokenization_spaces": False, "add_bos_token": False,
              "add_eos_token": False}
    return {"tokenizer_config.json": config, "special_tokens_map.json": special}


def encode_documents(tok, texts: list[str]) -> np.ndarray:
    """All documents' ids, each followed by EOT, as one uint32 array."""
    eot = tok.token_to_id(EOT)
    parts = []
    for enc in tok.encode_batch(texts, add_special_tokens=False):
        parts.append(np.asarray(enc.ids, dtype=np.uint32))
        parts.append(np.array([eot], dtype=np.uint32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)


BAD_BYTES_HINT = "pass --replace-bad-bytes to read it with U+FFFD in their place"


def _decode(path: str, data: bytes, errors: str, offset: int = 0, line: int | None = None) -> str:
    try:
        return data.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        at = f"line {line}, " if line is not None else ""
        raise DataError(f"{path}: not UTF-8 text ({at}byte offset {offset + e.start}: {e.reason}); "
                        f"{BAD_BYTES_HINT}") from None


def read_documents(path: str, errors: str = "strict") -> list[tuple[str, str]]:
    """(name, text) documents from a .txt file (one document), a .jsonl file (one per line, its
    "text" field) or a directory of those (recursively, sorted). Text must be UTF-8; with
    ``errors="replace"`` bad bytes become U+FFFD instead of an error naming the file and byte offset."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{path}: no such file or directory")
    if p.is_dir():
        files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in (".txt", ".jsonl"))
        if not files:
            raise DataError(f"{path}: no .txt or .jsonl files in this directory")
        return [d for q in files for d in read_documents(str(q), errors)]
    if not p.is_file():
        raise DataError(f"{path}: is not a regular file, expected .txt or .jsonl text")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if p.suffix != ".jsonl":
        return [(str(p), _decode(path, data, errors))]
    docs, offset = [], 0
    for n, raw in enumerate(data.splitlines(keepends=True), 1):
        line = _decode(path, raw, errors, offset, n)
        offset += len(raw)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise DataError(f"{path}:{n}: expected an object with a string \"text\" field")
        docs.append((f"{path}:{n}", row["text"]))
    return docs


def prepare_data(documents: list[tuple[str, str]], vocab_size: int, out_dir: str, source: str = "",
                 log: Callable[[str], None] = print, seq_len: int | None = None) -> dict:
    """Train a tokenizer on ``documents`` and write tokenizer.json, train.bin, val.bin, meta.json.
    One document in 20 is held out for validation; with fewer than 20 documents, the last 5% of
    the tokens are. Refused before anything is written: a corpus that yields far fewer distinct tokens
    than ``vocab_size``, and (given ``seq_len``) a validation split shorter than one training window."""
    texts = [t for _, t in documents if t]
    if not texts:
        raise DataError(f"{source or out_dir}: no text to train on")
    os.makedirs(out_dir, exist_ok=True)
    log(f"training a byte-level BPE tokenizer (vocab {vocab_size}) on {len(texts)} documents, "
        f"{sum(len(t) for t in texts) / 1e6:.1f}M characters ...")
    tok = train_tokenizer(texts, vocab_size)
    learned = tok.get_vocab_size()
    if learned < vocab_size * FAR_BELOW:
        raise DataError(f"--vocab-size {vocab_size}: {source or 'the corpus'} yields only {learned} distinct tokens; "
                        f"pass --vocab-size {learned} (or less), or more text")
    if learned < vocab_size:
        log(f"note: the corpus yields {learned} tokens, fewer than --vocab-size {vocab_size}")
    if len(texts) >= VAL_EVERY:
        val_texts = texts[VAL_EVERY - 1::VAL_EVERY]
        train_texts = [t for i, t in enumerate(texts) if i % VAL_EVERY != VAL_EVERY - 1]
        train, val = encode_documents(tok, train_texts), encode_documents(tok, val_texts)
    else:
        ids = encode_documents(tok, texts)
        cut = len(ids) - max(1, len(ids) // VAL_EVERY)
        train, val = ids[:cut], ids[cut:]
    if seq_len is not None and len(val) < seq_len + 1:
        raise DataError(f"{source or out_dir}: the validation split would hold {len(val)} tokens, fewer than one "
                        f"window of --seq-len {seq_len} + 1; use more text or a shorter --seq-len")
    write_tokens(os.path.join(out_dir, "train.bin"), train)
    write_tokens(os.path.join(out_dir, "val.bin"), val)
    tok_tmp = os.path.join(out_dir, f"tokenizer.json.tmp-{os.getpid()}")
    tok.save(tok_tmp)
    os.replace(tok_tmp, os.path.join(out_dir, "tokenizer.json"))
    meta = {"format": "u32 little-endian token ids", "vocab_size": tok.get_vocab_size(), "source": source,
            "documents": len(texts), "train_tokens": int(len(train)), "val_tokens": int(len(val)),
            "eot_id": tok.token_to_id(EOT), "unigram_entropy_nats": unigram_entropy(train)}
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    log(f"wrote {out_dir}/: train.bin {len(train):,} tokens, val.bin {len(val):,} tokens, tokenizer.json "
        f"(unigram entropy {meta['unigram_entropy_nats']:.3f} nats)")
    return meta


def default_data_ready(data_dir: str, vocab_size: int, source: str) -> bool:
    """Whether ``data_dir`` already holds the embedded corpus prepared for this vocab size."""
    try:
        with open(os.path.join(data_dir, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, json.JSONDecodeError):
        return False
    files = ("tokenizer.json", "train.bin", "val.bin")
    return (meta.get("vocab_size") == vocab_size and meta.get("source") == source
            and all(os.path.isfile(os.path.join(data_dir, n)) for n in files))


def prepare_from_text(text: str | None, vocab_size: int, output: str, seq_len: int,
                      replace_bad_bytes: bool = False) -> dict:
    """``train.py prepare-data``: check the settings, read the documents (``text``: a file or directory; None:
    the embedded corpus) and :func:`prepare_data` them into ``output``; every problem is a DataError."""
    from ..io.run_dir import usable_dir

    for flag, value in (("--vocab-size", vocab_size), ("--seq-len", seq_len)):
        if value < 1:
            raise DataError(f"{flag} {value}: must be at least 1")
    usable_dir(output, "--output")
    if text is None:
        from . import corpus

        docs, source = corpus.stdlib_documents(), "python-stdlib " + corpus.describe()
    else:
        docs, source = read_documents(text, errors="replace" if replace_bad_bytes else "strict"), os.path.abspath(text)
    try:
        return prepare_data(docs, vocab_size, output, source=source, seq_len=seq_len)
    except DataError:
        raise
    except ValueError as e:  # a vocab size too small for a byte-level BPE
        raise DataError(f"--vocab-size {vocab_size}: {e}") from None
