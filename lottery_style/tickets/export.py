"""Compact ticket export: a sparse ticket stored at the size its sparsity promises.

A dense state dict of a 89% sparse ticket is as large as the dense model, and
torch's sparse COO formats save next to nothing (64-bit indices). Here each
masked tensor is stored as its surviving values in mask order plus its mask
packed 8 entries per byte, which is the floor of 32 bits per kept weight + 1 bit
per weight; every other tensor (biases, buffers) is stored raw.

File layout (no pickle, so loading a foreign file cannot run code)::

    MAGIC | header length (uint64, little endian) | JSON header | payload

The header names every tensor with its dtype, shape and where its blobs sit in
the (decoded) payload, plus a CRC-32 of the decoded payload and the caller's
JSON ``metadata`` (the model config, so that the file alone rebuilds the model). ``compress=True``
byte-shuffles every multi-byte blob (all first bytes, then all second bytes...,
so the nearly constant sign/exponent bytes of the surviving weights line up)
and LZMA-codes the payload; both are lossless.

Pruned entries come back as +0.0: a -0.0 left by ``weight.mul_(mask)`` compares
equal but is not kept bit for bit. Every kept value and unmasked tensor is.
"""

from __future__ import annotations

import json
import lzma
import math
import struct
import sys
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from lottery_style.core.atomic import atomic_write

MAGIC = b"LSTICKET"
FORMAT_VERSION = 1
_LENGTH = struct.Struct("<Q")
VALUE_DTYPES = {"fp32": None, "fp16": torch.float16}  # None: each tensor's own dtype, exact

Values = Literal["fp32", "fp16"]


class ExportFormatError(ValueError):
    """A file that is not a well-formed ticket export (other magic bytes, a corrupt header or payload, another
    version or byte order); the message names the file and what is wrong."""


@dataclass(frozen=True)
class ExportStats:
    """Sizes of one export. ``dense_bytes`` and ``floor_bytes`` both include the unmasked tensors raw."""

    file_bytes: int
    dense_bytes: int  # every tensor raw, masked ones dense: what a plain state dict holds
    floor_bytes: int  # value bits x kept + 1 bit x entries of the masked tensors, + the unmasked tensors
    unmasked_bytes: int  # raw bytes of the tensors without a mask (part of dense and floor)
    kept: int  # surviving entries of the masked tensors
    masked_entries: int  # all entries of the masked tensors

    @property
    def ratio_to_floor(self) -> float:
        return self.file_bytes / self.floor_bytes

    @property
    def x_smaller_than_dense(self) -> float:
        return self.dense_bytes / self.file_bytes


# ------------------------------------------------------------------- blobs
def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(name: Any) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ExportFormatError(f"ticket export names an unknown dtype {name!r}")
    return dtype


def _raw(tensor: Tensor) -> np.ndarray:
    """The tensor's bytes in memory order (any dtype, bf16 included: numpy never sees the values)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


def _shuffle(raw: np.ndarray, itemsize: int) -> np.ndarray:
    return raw.reshape(-1, itemsize).T.reshape(-1) if itemsize > 1 else raw


def _unshuffle(raw: np.ndarray, itemsize: int) -> np.ndarray:
    return raw.reshape(itemsize, -1).T.reshape(-1) if itemsize > 1 else raw


class _PayloadWriter:
    """Appends blobs and remembers where each one starts."""

    def __init__(self, shuffle: bool):
        self.shuffle = shuffle
        self.chunks: list[bytes] = []
        self.size = 0

    def add(self, tensor: Tensor) -> list[int]:
        raw = _raw(tensor)
        if self.shuffle:
            raw = _shuffle(raw, tensor.element_size())
        data = raw.tobytes()
        self.chunks.append(data)
        self.size += len(data)
        return [self.size - len(data), len(data)]


def _read_blob(payload: memoryview, where: Any, dtype: torch.dtype, count: int, shuffled: bool, name: str) -> Tensor:
    itemsize = dtype.itemsize
    if not (isinstance(where, list) and len(where) == 2 and all(isinstance(x, int) for x in where)):
        raise ExportFormatError(f"ticket export: malformed blob position {where!r} for {name!r}")
    start, nbytes = where
    if nbytes != count * itemsize or start < 0 or start + nbytes > len(payload):
        raise ExportFormatError(f"ticket export: blob of {name!r} at {where} does not hold {count} x {dtype}")
    raw = np.frombuffer(payload[start : start + nbytes], dtype=np.uint8)
    if shuffled:
        raw = _unshuffle(raw, itemsize)
    out = torch.empty(count, dtype=dtype)
    out.view(torch.uint8).numpy()[:] = raw
    return out


# ------------------------------------------------------------------ export
def _check_masks(state_dict: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    for name, mask in masks.items():
        if name not in state_dict:
            raise ValueError(f"mask {name!r} names no tensor of the state dict")
        tensor = state_dict[name]
        if mask.dtype != torch.bool or mask.shape != tensor.shape:
            raise ValueError(
                f"mask {name!r} is {mask.dtype} {tuple(mask.shape)}: expected torch.bool {tuple(tensor.shape)}"
            )
        if not tensor.is_floating_point():
            raise ValueError(f"masked tensor {name!r} has dtype {tensor.dtype}: expected a floating point dtype")
    for name, tensor in state_dict.items():
        if not isinstance(tensor, Tensor):
            raise TypeError(f"state dict entry {name!r} is a {type(tensor).__name__}: only tensors can be exported")


def _masked_values(name: str, tensor: Tensor, mask: Tensor, value_dtype: torch.dtype | None) -> Tensor:
    flat, keep = tensor.detach().reshape(-1), mask.reshape(-1).to(tensor.device)
    stray = int(flat[~keep].count_nonzero())
    if stray:
        raise ValueError(f"{name!r} has {stray} nonzero pruned entries: apply the masks before exporting")
    values = flat[keep]
    if value_dtype is None:
        return values
    cast = values.to(value_dtype)
    if bool((torch.isinf(cast) & torch.isfinite(values)).any()):
        raise ValueError(f"{name!r} has surviving values beyond the {value_dtype} range: export with values='fp32'")
    return cast


def export_ticket(
    state_dict: Mapping[str, Tensor],
    masks: Mapping[str, Tensor],
    path: str | Path,
    *,
    values: Values = "fp32",
    compress: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> ExportStats:
    """Write ``state_dict`` with every masked tensor stored sparse; ``values='fp16'`` is lossy, the rest exact.

    ``metadata`` (JSON-serialisable) is stored in the header and read back by :func:`export_metadata`.
    """
    if values not in VALUE_DTYPES:
        raise ValueError(f"values={values!r}: expected one of {sorted(VALUE_DTYPES)}")
    _check_masks(state_dict, masks)
    writer = _PayloadWriter(shuffle=compress)
    entries: list[dict[str, Any]] = []
    floor_bits = dense_bytes = unmasked_bytes = kept_total = masked_total = 0
    for name, tensor in state_dict.items():
        entry: dict[str, Any] = {"name": name, "dtype": _dtype_name(tensor.dtype), "shape": list(tensor.shape)}
        raw_bytes = tensor.numel() * tensor.element_size()
        dense_bytes += raw_bytes
        if name in masks:
            kept_values = _masked_values(name, tensor, masks[name], VALUE_DTYPES[values])
            entry["value_dtype"] = _dtype_name(kept_values.dtype)
            entry["values"] = writer.add(kept_values)
            entry["bits"] = writer.add(torch.from_numpy(np.packbits(_raw(masks[name]))))
            floor_bits += kept_values.numel() * kept_values.element_size() * 8 + tensor.numel()
            kept_total += kept_values.numel()
            masked_total += tensor.numel()
        else:
            entry["data"] = writer.add(tensor)
            unmasked_bytes += raw_bytes
        entries.append(entry)
    payload = b"".join(writer.chunks)
    header = {
        "format": "lottery-style ticket",
        "version": FORMAT_VERSION,
        "byteorder": sys.byteorder,
        "codec": "lzma" if compress else "none",
        "shuffled": compress,
        "payload_bytes": len(payload),
        "crc32": zlib.crc32(payload),
        "tensors": entries,
        "metadata": dict(metadata or {}),
    }
    stored = lzma.compress(payload) if compress else payload
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")

    def write(handle: Any) -> None:
        handle.write(MAGIC + _LENGTH.pack(len(head)) + head)
        handle.write(stored)

    atomic_write(path, write)
    return ExportStats(
        file_bytes=len(MAGIC) + _LENGTH.size + len(head) + len(stored),
        dense_bytes=dense_bytes,
        floor_bytes=math.ceil(floor_bits / 8) + unmasked_bytes,
        unmasked_bytes=unmasked_bytes,
        kept=kept_total,
        masked_entries=masked_total,
    )


# -------------------------------------------------------------------- load
def _read_header(data: bytes, path: Path) -> tuple[dict[str, Any], memoryview]:
    if not data.startswith(MAGIC):
        raise ExportFormatError(f"{path} is not a lottery-style ticket export (it does not start with {MAGIC!r})")
    start = len(MAGIC) + _LENGTH.size
    if len(data) < start:
        raise ExportFormatError(f"{path} is truncated: no header length after the magic bytes")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    try:
        header = json.loads(data[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportFormatError(f"{path} has a corrupt header: {err}") from None
    if not isinstance(header, dict):
        raise ExportFormatError(f"{path} has a corrupt header: expected a JSON object")
    if header.get("version") != FORMAT_VERSION:
        raise ExportFormatError(f"{path} has format version {header.get('version')!r}: expected {FORMAT_VERSION}")
    if header.get("byteorder") != sys.byteorder:
        raise ExportFormatError(f"{path} was written {header.get('byteorder')}-endian: this machine is {sys.byteorder}-endian")
    return header, memoryview(data)[start + length :]


def _decode_payload(header: dict[str, Any], stored: memoryview, path: Path) -> memoryview:
    codec = header.get("codec")
    if codec == "lzma":
        try:
            payload = lzma.decompress(stored)
        except lzma.LZMAError as err:
            raise ExportFormatError(f"{path} has a corrupt compressed payload: {err}") from None
    elif codec == "none":
        payload = bytes(stored)
    else:
        raise ExportFormatError(f"{path} uses codec {codec!r}: expected 'none' or 'lzma'")
    if len(payload) != header.get("payload_bytes") or zlib.crc32(payload) != header.get("crc32"):
        raise ExportFormatError(f"{path} is corrupt or truncated: the payload does not match its size and CRC-32")
    return memoryview(payload)


def _restore(entry: dict[str, Any], payload: memoryview, shuffled: bool) -> tuple[Tensor, Tensor | None]:
    """One tensor (and its mask when it was stored sparse) from its header entry."""
    name, dtype, shape = entry["name"], _dtype_from_name(entry["dtype"]), torch.Size(entry["shape"])
    if "data" in entry:
        return _read_blob(payload, entry["data"], dtype, shape.numel(), shuffled, name).view(shape), None
    bits = _read_blob(payload, entry["bits"], torch.uint8, math.ceil(shape.numel() / 8), shuffled, name)
    keep = torch.from_numpy(np.unpackbits(bits.numpy(), count=shape.numel()).astype(bool))
    value_dtype = _dtype_from_name(entry["value_dtype"])
    kept_values = _read_blob(payload, entry["values"], value_dtype, int(keep.count_nonzero()), shuffled, name)
    flat = torch.zeros(shape.numel(), dtype=dtype)
    flat[keep] = kept_values.to(dtype)
    return flat.view(shape), keep.view(shape)


def export_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata`` given to :func:`export_ticket` (empty for a file written without any)."""
    path = Path(path)
    header, _ = _read_header(path.read_bytes(), path)
    metadata = header.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ExportFormatError(f"{path} has a corrupt header: its metadata is not a JSON object")
    return metadata


def load_ticket_export(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The state dict and masks written by :func:`export_ticket` (pruned entries as +0.0)."""
    path = Path(path)
    header, stored = _read_header(path.read_bytes(), path)
    payload = _decode_payload(header, stored, path)
    state_dict: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for entry in header.get("tensors", []):
        try:
            tensor, mask = _restore(entry, payload, bool(header.get("shuffled")))
        except (KeyError, TypeError) as err:
            raise ExportFormatError(f"{path} has a malformed tensor entry ({err!r}): {str(entry)[:200]}") from None
        state_dict[entry["name"]] = tensor
        if mask is not None:
            masks[entry["name"]] = mask
    return state_dict, masks
