"""Reading any safetensors file into float32/int host arrays, bfloat16 included.

``safetensors.numpy`` cannot load bfloat16 (NumPy has no such type), and most published checkpoints are
bfloat16. The format is simple enough to read directly: an 8-byte little-endian header length, a JSON
header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``, then the raw
little-endian bytes. bfloat16 is the top half of a float32, so widening it is a 16-bit shift: exact.
"""

from __future__ import annotations

import json
import struct

import numpy as np

_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
           "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}
_MAX_HEADER = 100 * 2**20  # the format's own limit on the JSON header


class SafetensorsError(ValueError):
    """The file is not a readable safetensors file; the message says what is wrong."""


def read_header(data: bytes | memoryview) -> tuple[dict, int]:
    """(header without __metadata__, offset where the tensor bytes begin)."""
    if len(data) < 8:
        raise SafetensorsError("too short to be a safetensors file")
    (n,) = struct.unpack("<Q", bytes(data[:8]))
    if n > _MAX_HEADER or 8 + n > len(data):
        raise SafetensorsError(f"header length {n} does not fit the file ({len(data)} bytes)")
    try:
        header = json.loads(bytes(data[8:8 + n]))
    except ValueError as e:
        raise SafetensorsError(f"header is not JSON ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError("header is not a JSON object")
    header.pop("__metadata__", None)
    return header, 8 + n


def load_safetensors(path: str, widen: bool = True) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(arrays by name, their stored dtypes by name) of a safetensors file. With ``widen``, bfloat16 and
    float16 arrays come back as float32 (exactly: both widen without rounding); bfloat16 always does, NumPy
    having no such type."""
    with open(path, "rb") as f:
        data = f.read()
    header, start = read_header(data)
    arrays, stored = {}, {}
    for name, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise SafetensorsError(f"tensor {name!r}: malformed header entry") from None
        raw = data[start + begin:start + end]
        count = int(np.prod(shape, dtype=np.int64))
        if dtype == "BF16":
            if len(raw) != 2 * count:
                raise SafetensorsError(f"tensor {name!r}: {len(raw)} bytes for shape {shape} of BF16")
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32).reshape(shape)
        elif dtype in _DTYPES:
            want = np.dtype(_DTYPES[dtype])
            if len(raw) != want.itemsize * count:
                raise SafetensorsError(f"tensor {name!r}: {len(raw)} bytes for shape {shape} of {dtype}")
            arr = np.frombuffer(raw, dtype=want).reshape(shape).copy()
            if widen and dtype == "F16":
                arr = arr.astype(np.float32)
        else:
            raise SafetensorsError(f"tensor {name!r}: dtype {dtype} is not supported")
        arrays[name], stored[name] = arr.astype(arr.dtype.newbyteorder("=")), dtype
    return arrays, stored
