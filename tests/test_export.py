"""Ticket files: exact round trip, safetensors readers, size against the 32d+1 bit floor, the xz wrapper, safe
loading, and files of the layout before safetensors (``*.lst``)."""

from __future__ import annotations

import json
import lzma
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from lottery_style.pruning import apply_masks, dense_masks, magnitude_prune
from lottery_style.tickets.export import export_metadata, export_ticket, load_ticket_export
from tests.conftest import tiny_model

SPARSITY = 1 - 0.8**10  # 89.26%: the paper's AdaIN ticket
Tensors = dict[str, torch.Tensor]


def _ticket(sparsity: float = SPARSITY) -> tuple[Tensors, Tensors]:
    """Default-initialised convs (kaiming-uniform), globally pruned, with biases and norm buffers beside them."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 64, 3), nn.Conv2d(64, 128, 3), nn.BatchNorm2d(128), nn.Conv2d(128, 256, 3), nn.Linear(256, 32)
    )
    net[2].running_mean.normal_()
    net[2].num_batches_tracked += 7
    weights = {name: p for name, p in net.named_parameters() if p.dim() > 1}
    masks = magnitude_prune(weights, dense_masks(weights), sparsity, tie_seed=0)
    with torch.no_grad():
        for name, mask in masks.items():
            weights[name].masked_fill_(~mask, 0.0)  # +0.0 everywhere: then every bit must survive
    return dict(net.state_dict()), masks


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def assert_loads_bit_for_bit(path: Path, state: Tensors, masks: Tensors) -> None:
    loaded, loaded_masks = load_ticket_export(path)
    assert list(loaded) == list(state)
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
        assert torch.equal(_bits(loaded[name]), _bits(tensor)), name
    assert list(loaded_masks) == list(masks)
    assert all(torch.equal(loaded_masks[n], masks[n]) for n in masks)


def write_lst_file(path: Path, state: Tensors, masks: Tensors, metadata: dict[str, Any], compress: bool) -> None:
    """A file in the layout before safetensors, as its writer wrote it: LSTICKET | header length | JSON header |
    payload, each masked tensor as its kept values and its packed mask; ``compress``: byte-shuffled blobs, LZMA."""
    chunks: list[bytes] = []

    def add(tensor: torch.Tensor) -> list[int]:
        raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy()
        size = tensor.element_size()
        data = (raw.reshape(-1, size).T.reshape(-1) if compress and size > 1 else raw).tobytes()
        chunks.append(data)
        start = sum(len(chunk) for chunk in chunks[:-1])
        return [start, len(data)]

    entries = []
    for name, tensor in state.items():
        entry: dict[str, Any] = {"name": name, "dtype": str(tensor.dtype)[6:], "shape": list(tensor.shape)}
        if name in masks:
            entry["value_dtype"] = entry["dtype"]
            entry["values"] = add(tensor.reshape(-1)[masks[name].reshape(-1)])
            entry["bits"] = add(torch.from_numpy(np.packbits(masks[name].reshape(-1).numpy())))
        else:
            entry["data"] = add(tensor)
        entries.append(entry)
    payload = b"".join(chunks)
    header = {
        "format": "lottery-style ticket", "version": 1, "byteorder": sys.byteorder, "codec": "lzma" if compress else "none",
        "shuffled": compress, "payload_bytes": len(payload), "crc32": zlib.crc32(payload), "tensors": entries,
        "metadata": metadata,
    }
    head = json.dumps(header).encode()
    path.write_bytes(b"LSTICKET" + struct.pack("<Q", len(head)) + head + (lzma.compress(payload) if compress else payload))


def test_fp32_round_trip_is_bit_for_bit_with_biases_buffers_and_tied_tensors(tmp_path) -> None:
    state, masks = _ticket()
    state["extra.half"] = torch.randn(3, 2).to(torch.bfloat16)
    state["extra.scalar"] = torch.tensor(2.5)
    state["extra.tied"] = state["0.bias"]  # the same tensor twice, as tied weights: safetensors refuses shared memory
    state["extra.channels_last"] = torch.randn(2, 3, 4, 5).to(memory_format=torch.channels_last)
    for compress in (False, True):
        export_ticket(state, masks, tmp_path / "t.safetensors", compress=compress)
        assert_loads_bit_for_bit(tmp_path / "t.safetensors", state, masks)


def test_masks_applied_by_multiplication_load_equal(tmp_path) -> None:
    """mul_ leaves -0.0 at negative pruned weights; they come back as +0.0, which compares equal."""
    torch.manual_seed(1)
    weight = nn.Conv2d(4, 8, 3).weight
    masks = magnitude_prune({"w": weight}, dense_masks({"w": weight}), 0.5, tie_seed=0)
    apply_masks({"w": weight}, masks)
    export_ticket({"w": weight.detach()}, masks, tmp_path / "t.safetensors")
    loaded, _ = load_ticket_export(tmp_path / "t.safetensors")
    assert torch.equal(loaded["w"], weight.detach())


def test_any_safetensors_reader_opens_a_ticket_file(tmp_path) -> None:
    """Values and packed bits are plain tensors of the file; the format's keys and the caller's are in its metadata."""
    state, masks = _ticket()
    masks = dict(reversed(masks.items()))  # an order of their own, kept by the file
    export_ticket(state, masks, tmp_path / "t.safetensors", metadata={"model": {"name": "adain", "alpha": 1.0}})
    with safe_open(tmp_path / "t.safetensors", "pt") as handle:
        keys, metadata = set(handle.keys()), handle.metadata()
        values, bits = handle.get_tensor("0.weight:values"), handle.get_tensor("0.weight:mask")
    unmasked = [name for name in state if name not in masks]
    assert keys == {*unmasked, *(f"{name}:{kind}" for name in masks for kind in ("values", "mask"))}
    keep = masks["0.weight"].reshape(-1)
    assert torch.equal(values, state["0.weight"].reshape(-1)[keep])
    assert bits.dtype == torch.uint8 and torch.equal(bits, torch.from_numpy(np.packbits(keep.numpy())))
    assert json.loads(metadata["format"]) == "lottery-style ticket" and json.loads(metadata["format_version"]) == 2
    assert json.loads(metadata["tensors"]) == list(state)
    masked = json.loads(metadata["masked"])
    assert list(masked) == list(masks)
    assert masked["0.weight"] == {"dtype": "float32", "shape": [64, 3, 3, 3]}
    assert json.loads(metadata["model"]) == {"name": "adain", "alpha": 1.0}
    assert export_metadata(tmp_path / "t.safetensors") == {"model": {"name": "adain", "alpha": 1.0}}
    assert list(load_ticket_export(tmp_path / "t.safetensors")[1]) == list(masks)


def test_plain_file_is_within_2_percent_of_the_floor(tmp_path) -> None:
    state, masks = _ticket()
    stats = export_ticket(state, masks, tmp_path / "t.safetensors")
    kept = sum(int(m.sum()) for m in masks.values())
    entries = sum(m.numel() for m in masks.values())
    unmasked = sum(t.numel() * t.element_size() for n, t in state.items() if n not in masks)
    assert stats.kept == kept and stats.masked_entries == entries and stats.unmasked_bytes == unmasked
    assert stats.floor_bytes == -(-(32 * kept + entries) // 8) + unmasked
    assert stats.file_bytes == (tmp_path / "t.safetensors").stat().st_size
    assert stats.ratio_to_floor <= 1.02


def test_adain_decoder_ticket_at_89_percent_is_within_1_percent_of_the_floor(tmp_path) -> None:
    model = tiny_model("adain")  # the real architecture, random weights
    weights = {name: p.detach() for name, p in model.prunable_weights()["decoder"].items()}
    masks = magnitude_prune(weights, dense_masks(weights), SPARSITY, tie_seed=0)
    state = {f"decoder.{name}": t for name, t in model.decoder.state_dict().items()}
    state = {name: t.masked_fill(~masks[name], 0.0) if name in masks else t for name, t in state.items()}
    stats = export_ticket(state, masks, tmp_path / "decoder.safetensors", metadata={"model": {"name": "adain"}})
    assert stats.kept == sum(m.numel() for m in masks.values()) - round(SPARSITY * stats.masked_entries)
    assert stats.file_bytes == (tmp_path / "decoder.safetensors").stat().st_size
    assert stats.ratio_to_floor <= 1.01, stats
    assert_loads_bit_for_bit(tmp_path / "decoder.safetensors", state, masks)


def test_xz_file_is_9x_smaller_than_dense_fp32_and_decompresses_to_the_safetensors_file(tmp_path) -> None:
    state, masks = _ticket()
    plain = export_ticket(state, masks, tmp_path / "t.safetensors")
    stats = export_ticket(state, masks, tmp_path / "t.safetensors.xz", compress=True)
    assert stats.dense_bytes == sum(t.numel() * t.element_size() for t in state.values())
    assert stats.x_smaller_than_dense >= 9.0 and stats.file_bytes < plain.file_bytes
    # what `xz -d` does: the xz container holds a safetensors file, the plain one's tensors and metadata
    unpacked = tmp_path / "unpacked.safetensors"
    unpacked.write_bytes(lzma.decompress((tmp_path / "t.safetensors.xz").read_bytes(), format=lzma.FORMAT_XZ))
    with safe_open(unpacked, "pt") as xz_file, safe_open(tmp_path / "t.safetensors", "pt") as plain_file:
        assert xz_file.metadata() == plain_file.metadata()
        keys = plain_file.keys()
        assert sorted(xz_file.keys()) == sorted(keys)
        assert all(torch.equal(xz_file.get_tensor(key), plain_file.get_tensor(key)) for key in keys)
    assert_loads_bit_for_bit(tmp_path / "t.safetensors.xz", state, masks)


def test_fp16_values_are_close_and_smaller(tmp_path) -> None:
    state, masks = _ticket()
    exact = export_ticket(state, masks, tmp_path / "exact.safetensors")
    half = export_ticket(state, masks, tmp_path / "half.safetensors", values="fp16")
    loaded, loaded_masks = load_ticket_export(tmp_path / "half.safetensors")
    assert abs(exact.file_bytes - half.file_bytes - 2 * half.kept) < 64  # 2 bytes per survivor (+ header digits)
    assert half.ratio_to_floor <= 1.02
    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype
        if name in masks:
            torch.testing.assert_close(loaded[name], tensor, rtol=1e-3, atol=1e-6)
            assert torch.equal(loaded_masks[name], masks[name])
        else:
            assert torch.equal(loaded[name], tensor), name  # only the masked values are lossy


def test_foreign_and_corrupt_files_give_clear_errors(tmp_path) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"w": torch.zeros(3)}, foreign)
    with pytest.raises(ValueError, match="not a lottery-style ticket file"):
        load_ticket_export(foreign)
    save_file({"w": torch.zeros(3)}, tmp_path / "plain.safetensors")  # a safetensors file, but not a ticket
    with pytest.raises(ValueError, match="not a lottery-style ticket file"):
        load_ticket_export(tmp_path / "plain.safetensors")
    state, masks = _ticket(0.5)
    for compress in (False, True):
        path = tmp_path / f"t{compress}.safetensors"
        export_ticket(state, masks, path, compress=compress)
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF  # a bit flipped in a tensor (plain), in the xz stream (compressed)
        path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match="corrupt"):
            load_ticket_export(path)
        path.write_bytes(bytes(data[: len(data) // 2]))
        with pytest.raises(ValueError, match="corrupt"):
            load_ticket_export(path)


def test_bad_export_requests_are_rejected(tmp_path) -> None:
    state, masks = _ticket(0.5)
    with pytest.raises(ValueError, match="values='bf16'"):
        export_ticket(state, masks, tmp_path / "t.safetensors", values="bf16")  # type: ignore[arg-type]
    name = next(iter(masks))
    unpruned = {**state, name: torch.ones_like(state[name])}
    with pytest.raises(ValueError, match="nonzero pruned entries"):
        export_ticket(unpruned, masks, tmp_path / "t.safetensors")
    with pytest.raises(ValueError, match="names no tensor"):
        export_ticket(state, {**masks, "missing.weight": masks[name]}, tmp_path / "t.safetensors")
    with pytest.raises(ValueError, match=r"\['format'\] are the ticket format's own"):
        export_ticket(state, masks, tmp_path / "t.safetensors", metadata={"format": "mine"})
    with pytest.raises(ValueError, match=f"'{name}:mask'.*clash"):
        export_ticket({**state, f"{name}:mask": torch.zeros(1)}, masks, tmp_path / "t.safetensors")
    assert not (tmp_path / "t.safetensors").exists()


# ------------------------------------------------------------ the layout before
def test_files_of_the_layout_before_load_bit_for_bit(tmp_path) -> None:
    state, masks = _ticket()
    state["extra.half"] = torch.randn(3, 2).to(torch.bfloat16)
    for compress in (False, True):
        path = tmp_path / f"t{compress}.lst"
        write_lst_file(path, state, masks, {"model": {"name": "adain"}}, compress)
        assert_loads_bit_for_bit(path, state, masks)
        assert export_metadata(path) == {"model": {"name": "adain"}}
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match="corrupt"):
            load_ticket_export(path)
