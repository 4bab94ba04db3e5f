"""A GGUF file (llama.cpp's format) of a model, written with the ``gguf`` package (the ``gguf`` extra).

What llama.cpp reads, as its own ``convert_hf_to_gguf.py`` writes it: ``general.architecture`` and the
architecture's hyperparameters (the table entry's ``gguf_metadata``), the tokenizer as a GPT-2-style
byte-level BPE (``tokenizer.ggml.model = "gpt2"``: every token, its type, the merges, bos/eos) and the tensors
under GGUF names (the entry's ``gguf_tensors``, which also permutes q/k rows into llama.cpp's rotary layout).
``--f16`` stores matrices as float16; 1-D tensors (the norms) stay float32, as llama.cpp's converter keeps them.
The file is written under a temporary name beside the target and renamed, so a failed export leaves no
half-written GGUF (and an earlier file of that name intact).
"""

from __future__ import annotations

import json
import os

import numpy as np

from minigrad.io import CheckpointError

from .config import ModelConfig
from .pretrained import FAMILY_NAMES, Architecture

GGUF_ARCH = {"llama": "llama"}  # our family -> GGUF general.architecture


class ExportError(CheckpointError):
    """The model or its tokenizer cannot be exported as GGUF; the message says which and why."""


def require_gguf() -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise ExportError("export needs the gguf package: pip install 'minigrad[gguf]'")


def _merge_text(merge) -> str:
    return merge if isinstance(merge, str) else " ".join(merge)  # tokenizers writes [a, b] or "a b"


def gguf_vocab(tokenizer_path: str, vocab_size: int) -> dict:
    """tokens, token types, merges, bos/eos id and pre-tokenizer name for GGUF, from a tokenizer.json.
    Ids the tokenizer does not have (the model's vocabulary may be larger) become ``[PADi]`` UNUSED tokens,
    as llama.cpp's converter does. Only byte-level BPE with GPT-2's pre-tokenizer regex is written."""
    import gguf

    from minigrad.data.tokenizer import EOT

    with open(tokenizer_path, encoding="utf-8") as f:
        body = json.load(f)
    model, pre = body.get("model") or {}, body.get("pre_tokenizer") or {}
    if model.get("type") != "BPE" or pre.get("type") != "ByteLevel" or not pre.get("use_regex", True):
        raise ExportError(f"{tokenizer_path}: GGUF export writes byte-level BPE tokenizers with GPT-2's "
                          f"pre-tokenizer; this one is {model.get('type')} with pre-tokenizer {pre.get('type')}")
    vocab = dict(model.get("vocab") or {})
    specials = {t["content"]: t["id"] for t in body.get("added_tokens") or []}
    vocab.update(specials)
    if vocab and max(vocab.values()) >= vocab_size:
        raise ExportError(f"{tokenizer_path}: token id {max(vocab.values())} is outside the model's vocabulary "
                          f"of {vocab_size}")
    by_id = {i: t for t, i in vocab.items()}
    special_ids = {t["id"] for t in body.get("added_tokens") or [] if t.get("special")}
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if i in special_ids else gguf.TokenType.NORMAL)
    eot = vocab.get(EOT)
    return {"tokens": tokens, "types": types, "merges": [_merge_text(m) for m in model.get("merges") or []],
            "eot": eot, "pre": "gpt-2"}


def check_family(family: str, where: str) -> None:
    """An ExportError for a family without a GGUF converter."""
    if family not in GGUF_ARCH:
        raise ExportError(f"{where}: GGUF export supports Llama-architecture models; this is a "
                          f"{FAMILY_NAMES.get(family, family)} model")


def check_exportable(arch: Architecture, where: str) -> str:
    """The GGUF architecture name of a table entry (an ExportError if it has no GGUF converter)."""
    check_family(arch.family if arch.gguf_tensors is not None else "", where)
    return GGUF_ARCH[arch.family]


def write_gguf(path: str, arch: Architecture, cfg: ModelConfig, state: dict[str, np.ndarray], tokenizer_path: str,
               f16: bool = False, name: str = "minigrad") -> dict:
    """Write the GGUF to ``path`` (atomically); returns a summary (tensors, bytes, file type)."""
    import gguf

    arch_name = check_exportable(arch, path)
    vocab = gguf_vocab(tokenizer_path, cfg.vocab_size)
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, arch_name)
    try:
        writer.add_name(name)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        arch.gguf_metadata(writer, cfg)
        writer.add_tokenizer_model("gpt2")
        writer.add_tokenizer_pre(vocab["pre"])
        writer.add_token_list(vocab["tokens"])
        writer.add_token_types(vocab["types"])
        writer.add_token_merges(vocab["merges"])
        if vocab["eot"] is not None:
            writer.add_bos_token_id(vocab["eot"])
            writer.add_eos_token_id(vocab["eot"])
            writer.add_add_bos_token(True)  # documents follow an end-of-text token in training, as sample does
        count = 0
        for gguf_name, w in arch.gguf_tensors(state, cfg):
            half = f16 and w.ndim >= 2
            writer.add_tensor(gguf_name, np.ascontiguousarray(w, dtype=np.float16 if half else np.float32))
            count += 1
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {"path": path, "tensors": count, "bytes": os.path.getsize(path), "f16": f16}
