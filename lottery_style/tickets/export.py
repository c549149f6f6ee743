"""Ticket files: a sparse ticket stored as a safetensors file, at the size its sparsity promises.

A dense state dict of a 89% sparse ticket is as large as the dense model, and
torch's sparse COO formats save next to nothing (64-bit indices). Here each
masked tensor ``name`` is two tensors of a safetensors file: ``name:values``,
its surviving values in the mask's (row-major) order, and ``name:mask``, its
mask packed 8 entries per byte (uint8, ``numpy.packbits`` order). That is the
floor of 32 bits per kept weight + 1 bit per weight; every other tensor
(biases, buffers) is stored raw under its own name. safetensors holds no
pickle, so loading a foreign file cannot run code, and any safetensors reader
(Python, Rust, JavaScript, the Hugging Face Hub) opens a ticket.

The file's string metadata holds, each value JSON-encoded, the format's own
keys (:data:`FORMAT_KEYS`)::

    format          "lottery-style ticket"
    format_version  2
    tensors         the state dict's names, in its order
    masked          {name: {"dtype", "shape"}} of the masked tensors, in the masks' order
    crc32           CRC-32 of the file's data section: a flipped bit is an error, not a changed weight

beside the caller's ``metadata``, one key each (the model config, so that the
file alone rebuilds the model). ``compress=True`` wraps the whole file in a
standard xz container (LZMA2 with literal settings for 4-byte floats):
``xz -d`` gives the safetensors file back, and a compressed ticket loads as it
is. Files of the layout before (``LSTICKET`` | header length | JSON header |
payload, named ``*.lst``) are still read; nothing writes them.

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
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from lottery_style.core.atomic import atomic_write

FORMAT = "lottery-style ticket"
FORMAT_VERSION = 2
FORMAT_KEYS = ("format", "format_version", "tensors", "masked", "crc32")
VALUES_SUFFIX = ":values"  # name:values, a masked tensor's surviving values
MASK_SUFFIX = ":mask"  # name:mask, its mask packed 8 entries per byte
XZ_MAGIC = b"\xfd7zXZ\x00"
# lc=0 lp=2 pb=2: the coder's contexts follow positions within 4-byte words, not the previous byte, which suits
# little-endian floats: as small as byte-shuffling the values before plain LZMA, in a container `xz -d` opens.
XZ_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 6, "lc": 0, "lp": 2, "pb": 2}]
LST_MAGIC = b"LSTICKET"  # the layout before (format version 1): read, never written
_LENGTH = struct.Struct("<Q")  # safetensors' header length and the old layout's, both little endian
VALUE_DTYPES = {"fp32": None, "fp16": torch.float16}  # None: each tensor's own dtype, exact

Values = Literal["fp32", "fp16"]


class ExportFormatError(ValueError):
    """A file that is not a well-formed ticket file (another kind of file, a corrupt header or payload, another
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


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype_from_name(name: Any) -> torch.dtype:
    dtype = getattr(torch, name, None) if isinstance(name, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ExportFormatError(f"ticket file names an unknown dtype {name!r}")
    return dtype


def _raw(tensor: Tensor) -> np.ndarray:
    """The tensor's bytes in memory order (any dtype, bf16 included: numpy never sees the values)."""
    return tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()


def _unpack(bits: Tensor, shape: torch.Size) -> Tensor:
    return torch.from_numpy(np.unpackbits(bits.numpy(), count=shape.numel()).astype(bool)).view(shape)


def _scatter(kept_values: Tensor, keep: Tensor, dtype: torch.dtype) -> Tensor:
    """The dense tensor of ``keep``'s shape: ``kept_values`` at the kept entries, +0.0 elsewhere."""
    flat = torch.zeros(keep.numel(), dtype=dtype)
    flat[keep.reshape(-1)] = kept_values.to(dtype)
    return flat.view(keep.shape)


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
    stored = [*state_dict, *(name + suffix for name in masks for suffix in (VALUES_SUFFIX, MASK_SUFFIX))]
    clashes = sorted(name for name in set(stored) if stored.count(name) > 1)
    if clashes:
        raise ValueError(f"state dict names {clashes} clash with the stored names of masked tensors")


def _masked_values(name: str, tensor: Tensor, mask: Tensor, value_dtype: torch.dtype | None) -> Tensor:
    flat, keep = tensor.detach().reshape(-1), mask.reshape(-1).to(tensor.device)
    stray = int(flat[~keep].count_nonzero())
    if stray:
        raise ValueError(f"{name!r} has {stray} nonzero pruned entries: apply the masks before exporting")
    values = flat[keep].cpu()
    if value_dtype is None:
        return values
    cast = values.to(value_dtype)
    if bool((torch.isinf(cast) & torch.isfinite(values)).any()):
        raise ValueError(f"{name!r} has surviving values beyond the {value_dtype} range: export with values='fp32'")
    return cast


def _data_section(data: bytes | memoryview) -> memoryview:
    """A safetensors file's tensor bytes, after its 8-byte header length and its header."""
    (length,) = _LENGTH.unpack_from(data)
    return memoryview(data)[_LENGTH.size + length :]


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

    ``metadata`` (JSON-serialisable values, none under a :data:`FORMAT_KEYS` name) goes into the file's metadata
    and is read back by :func:`export_metadata`. ``compress=True`` writes the file xz-compressed (say
    ``.safetensors.xz``).
    """
    if values not in VALUE_DTYPES:
        raise ValueError(f"values={values!r}: expected one of {sorted(VALUE_DTYPES)}")
    reserved = sorted(set(metadata or {}) & set(FORMAT_KEYS))
    if reserved:
        raise ValueError(f"metadata keys {reserved} are the ticket format's own: expected other names")
    _check_masks(state_dict, masks)
    tensors: dict[str, Tensor] = {}
    floor_bits = dense_bytes = unmasked_bytes = kept_total = 0
    for name, tensor in state_dict.items():
        raw_bytes = tensor.numel() * tensor.element_size()
        dense_bytes += raw_bytes
        if name in masks:
            kept_values = _masked_values(name, tensor, masks[name], VALUE_DTYPES[values])
            tensors[name + VALUES_SUFFIX] = kept_values
            tensors[name + MASK_SUFFIX] = torch.from_numpy(np.packbits(_raw(masks[name])))
            floor_bits += kept_values.numel() * kept_values.element_size() * 8 + tensor.numel()
            kept_total += kept_values.numel()
        else:  # an owned contiguous copy: safetensors refuses tensors that share memory (tied weights)
            tensors[name] = tensor.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
            unmasked_bytes += raw_bytes
    masked = {name: {"dtype": _dtype_name(state_dict[name].dtype), "shape": list(m.shape)} for name, m in masks.items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "tensors": list(state_dict),
        "masked": masked,
        **dict(metadata or {}),
    }
    strings = {key: json.dumps(value, separators=(",", ":")) for key, value in header.items()}
    # The data section does not depend on the metadata: its CRC is taken from a first serialisation.
    crc = zlib.crc32(_data_section(save_safetensors(tensors, strings)))
    data = save_safetensors(tensors, {**strings, "crc32": str(crc)})
    if compress:
        data = lzma.compress(data, format=lzma.FORMAT_XZ, filters=XZ_FILTERS)
    atomic_write(path, lambda handle: handle.write(data))
    return ExportStats(
        file_bytes=len(data),
        dense_bytes=dense_bytes,
        floor_bytes=math.ceil(floor_bits / 8) + unmasked_bytes,
        unmasked_bytes=unmasked_bytes,
        kept=kept_total,
        masked_entries=sum(mask.numel() for mask in masks.values()),
    )


# -------------------------------------------------------------------- load
@dataclass(frozen=True)
class _TicketFile:
    state_dict: dict[str, Tensor]
    masks: dict[str, Tensor]
    metadata: dict[str, Any]


def is_ticket_file(path: str | Path) -> bool:
    """Whether ``path`` looks like a ticket file by its first bytes: safetensors (a JSON header after its length),
    xz-compressed, or the old layout. :func:`load_ticket_export` tells whether it is a well-formed one."""
    with Path(path).open("rb") as handle:
        start = handle.read(_LENGTH.size + 1)
    return start.startswith((XZ_MAGIC, LST_MAGIC)) or start[_LENGTH.size :] == b"{"


def _safetensors_metadata(data: bytes, path: Path) -> dict[str, Any]:
    """The caller's and the format's metadata of a safetensors ticket, JSON-decoded and checked."""
    foreign = ExportFormatError(
        f"{path} is not a lottery-style ticket file: expected a safetensors file with format {FORMAT!r} in its "
        f"metadata (or the older {LST_MAGIC.decode()} layout)"
    )
    if len(data) < _LENGTH.size:
        raise foreign
    (length,) = _LENGTH.unpack_from(data)
    try:
        header = json.loads(data[_LENGTH.size : _LENGTH.size + length].decode("utf-8"))
        strings = header["__metadata__"]
        if json.loads(strings["format"]) != FORMAT:
            raise foreign
        metadata = {key: json.loads(value) for key, value in strings.items()}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        raise foreign from None
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ExportFormatError(
            f"{path} has format version {metadata.get('format_version')!r}: expected {FORMAT_VERSION}"
        )
    return metadata


def _masked_entry(stored: dict[str, Tensor], name: str, entry: Any) -> tuple[Tensor, Tensor]:
    """A masked tensor and its mask from its two stored tensors and its ``masked`` metadata entry."""
    shape, dtype = torch.Size(entry["shape"]), _dtype_from_name(entry["dtype"])
    bits, kept_values = stored[name + MASK_SUFFIX], stored[name + VALUES_SUFFIX]
    if bits.dtype != torch.uint8 or bits.numel() != math.ceil(shape.numel() / 8):
        raise ValueError(f"{name}{MASK_SUFFIX} is {bits.dtype} x {bits.numel()}: expected the packed bits of {shape}")
    keep = _unpack(bits, shape)
    if kept_values.dim() != 1 or kept_values.numel() != int(keep.count_nonzero()):
        raise ValueError(f"{name}{VALUES_SUFFIX} holds {kept_values.numel()} values: its mask keeps {int(keep.sum())}")
    return _scatter(kept_values, keep, dtype), keep


def _read_safetensors(data: bytes, path: Path) -> _TicketFile:
    metadata = _safetensors_metadata(data, path)
    try:
        stored = load_safetensors(data)
    except SafetensorError as err:
        raise ExportFormatError(f"{path} is corrupt or truncated: {err}") from None
    if zlib.crc32(_data_section(data)) != metadata.get("crc32"):
        raise ExportFormatError(f"{path} is corrupt: its tensor data does not match its CRC-32")
    try:
        masked = {name: _masked_entry(stored, name, entry) for name, entry in metadata["masked"].items()}
        state_dict = {name: masked[name][0] if name in masked else stored[name] for name in metadata["tensors"]}
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ExportFormatError(f"{path} has malformed tensors or metadata: {err}") from None
    user = {key: value for key, value in metadata.items() if key not in FORMAT_KEYS}
    return _TicketFile(state_dict, {name: mask for name, (_, mask) in masked.items()}, user)


def _read(path: str | Path) -> _TicketFile:
    path = Path(path)
    data = path.read_bytes()
    if data.startswith(LST_MAGIC):
        return _read_lst(data, path)
    if data.startswith(XZ_MAGIC):
        try:
            data = lzma.decompress(data, format=lzma.FORMAT_XZ)
        except lzma.LZMAError as err:
            raise ExportFormatError(f"{path} has a corrupt compressed payload: {err}") from None
    return _read_safetensors(data, path)


def export_metadata(path: str | Path) -> dict[str, Any]:
    """The ``metadata`` given to :func:`export_ticket` (empty for a file written without any)."""
    return _read(path).metadata


def load_ticket_export(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """The state dict and masks written by :func:`export_ticket` (pruned entries as +0.0), masks in their order."""
    ticket = _read(path)
    return ticket.state_dict, ticket.masks


# ---------------------------------------------------------- the old layout
# LSTICKET | header length (uint64, little endian) | JSON header | payload. The header names every tensor with its
# dtype, shape and where its blobs sit in the payload (LZMA-coded and byte-shuffled when "codec" is "lzma"), with a
# CRC-32 of the decoded payload and the caller's metadata. Read only: new files are safetensors.
_LST_VERSION = 1


def _unshuffle(raw: np.ndarray, itemsize: int) -> np.ndarray:
    return raw.reshape(itemsize, -1).T.reshape(-1) if itemsize > 1 else raw


def _read_blob(payload: memoryview, where: Any, dtype: torch.dtype, count: int, shuffled: bool, name: str) -> Tensor:
    itemsize = dtype.itemsize
    if not (isinstance(where, list) and len(where) == 2 and all(isinstance(x, int) for x in where)):
        raise ExportFormatError(f"ticket file: malformed blob position {where!r} for {name!r}")
    start, nbytes = where
    if nbytes != count * itemsize or start < 0 or start + nbytes > len(payload):
        raise ExportFormatError(f"ticket file: blob of {name!r} at {where} does not hold {count} x {dtype}")
    raw = np.frombuffer(payload[start : start + nbytes], dtype=np.uint8)
    if shuffled:
        raw = _unshuffle(raw, itemsize)
    out = torch.empty(count, dtype=dtype)
    out.view(torch.uint8).numpy()[:] = raw
    return out


def _lst_header(data: bytes, path: Path) -> tuple[dict[str, Any], memoryview]:
    start = len(LST_MAGIC) + _LENGTH.size
    if len(data) < start:
        raise ExportFormatError(f"{path} is truncated: no header length after the magic bytes")
    (length,) = _LENGTH.unpack_from(data, len(LST_MAGIC))
    try:
        header = json.loads(data[start : start + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ExportFormatError(f"{path} has a corrupt header: {err}") from None
    if not isinstance(header, dict) or not isinstance(header.get("metadata", {}), dict):
        raise ExportFormatError(f"{path} has a corrupt header: expected a JSON object with a metadata object")
    if header.get("version") != _LST_VERSION:
        raise ExportFormatError(f"{path} has format version {header.get('version')!r}: expected {_LST_VERSION}")
    if header.get("byteorder") != sys.byteorder:
        raise ExportFormatError(f"{path} was written {header.get('byteorder')}-endian: this machine is {sys.byteorder}-endian")
    return header, memoryview(data)[start + length :]


def _lst_payload(header: dict[str, Any], stored: memoryview, path: Path) -> memoryview:
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


def _lst_entry(entry: dict[str, Any], payload: memoryview, shuffled: bool) -> tuple[Tensor, Tensor | None]:
    """One tensor (and its mask when it was stored sparse) from its header entry."""
    name, dtype, shape = entry["name"], _dtype_from_name(entry["dtype"]), torch.Size(entry["shape"])
    if "data" in entry:
        return _read_blob(payload, entry["data"], dtype, shape.numel(), shuffled, name).view(shape), None
    bits = _read_blob(payload, entry["bits"], torch.uint8, math.ceil(shape.numel() / 8), shuffled, name)
    keep = _unpack(bits, shape)
    value_dtype = _dtype_from_name(entry["value_dtype"])
    kept_values = _read_blob(payload, entry["values"], value_dtype, int(keep.count_nonzero()), shuffled, name)
    return _scatter(kept_values, keep, dtype), keep


def _read_lst(data: bytes, path: Path) -> _TicketFile:
    header, stored = _lst_header(data, path)
    payload = _lst_payload(header, stored, path)
    state_dict: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for entry in header.get("tensors", []):
        try:
            tensor, mask = _lst_entry(entry, payload, bool(header.get("shuffled")))
        except (KeyError, TypeError) as err:
            raise ExportFormatError(f"{path} has a malformed tensor entry ({err!r}): {str(entry)[:200]}") from None
        state_dict[entry["name"]] = tensor
        if mask is not None:
            masks[entry["name"]] = mask
    return _TicketFile(state_dict, masks, header.get("metadata", {}))
