"""Compact ticket export: exact round trip, size against the 32d+1 bit floor, compression, safe loading."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lottery_style.pruning import apply_masks, dense_masks, magnitude_prune
from lottery_style.tickets.export import export_ticket, load_ticket_export

SPARSITY = 1 - 0.8**10  # 89.26%: the paper's AdaIN ticket


def _ticket(sparsity: float = SPARSITY) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
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


def test_fp32_round_trip_is_bit_for_bit_with_biases_and_buffers(tmp_path) -> None:
    state, masks = _ticket()
    state["extra.half"] = torch.randn(3, 2).to(torch.bfloat16)
    state["extra.scalar"] = torch.tensor(2.5)
    for compress in (False, True):
        export_ticket(state, masks, tmp_path / "t.lst", compress=compress)
        loaded, loaded_masks = load_ticket_export(tmp_path / "t.lst")
        assert list(loaded) == list(state)
        for name, tensor in state.items():
            assert loaded[name].dtype == tensor.dtype and loaded[name].shape == tensor.shape, name
            assert torch.equal(_bits(loaded[name]), _bits(tensor)), name
        assert list(loaded_masks) == list(masks)
        assert all(torch.equal(loaded_masks[n], masks[n]) for n in masks)


def test_masks_applied_by_multiplication_load_equal(tmp_path) -> None:
    """mul_ leaves -0.0 at negative pruned weights; they come back as +0.0, which compares equal."""
    torch.manual_seed(1)
    weight = nn.Conv2d(4, 8, 3).weight
    masks = magnitude_prune({"w": weight}, dense_masks({"w": weight}), 0.5, tie_seed=0)
    apply_masks({"w": weight}, masks)
    export_ticket({"w": weight.detach()}, masks, tmp_path / "t.lst")
    loaded, _ = load_ticket_export(tmp_path / "t.lst")
    assert torch.equal(loaded["w"], weight.detach())


def test_plain_file_is_within_2_percent_of_the_floor(tmp_path) -> None:
    state, masks = _ticket()
    stats = export_ticket(state, masks, tmp_path / "t.lst")
    kept = sum(int(m.sum()) for m in masks.values())
    entries = sum(m.numel() for m in masks.values())
    unmasked = sum(t.numel() * t.element_size() for n, t in state.items() if n not in masks)
    assert stats.kept == kept and stats.masked_entries == entries and stats.unmasked_bytes == unmasked
    assert stats.floor_bytes == -(-(32 * kept + entries) // 8) + unmasked
    assert stats.file_bytes == (tmp_path / "t.lst").stat().st_size
    assert stats.ratio_to_floor <= 1.02


def test_compressed_file_is_9x_smaller_than_dense_fp32(tmp_path) -> None:
    state, masks = _ticket()
    stats = export_ticket(state, masks, tmp_path / "t.lst", compress=True)
    assert stats.dense_bytes == sum(t.numel() * t.element_size() for t in state.values())
    assert stats.x_smaller_than_dense >= 9.0


def test_fp16_values_are_close_and_smaller(tmp_path) -> None:
    state, masks = _ticket()
    exact = export_ticket(state, masks, tmp_path / "exact.lst")
    half = export_ticket(state, masks, tmp_path / "half.lst", values="fp16")
    loaded, loaded_masks = load_ticket_export(tmp_path / "half.lst")
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
    with pytest.raises(ValueError, match="not a lottery-style ticket export"):
        load_ticket_export(foreign)
    state, masks = _ticket(0.5)
    for compress in (False, True):
        path = tmp_path / f"t{compress}.lst"
        export_ticket(state, masks, path, compress=compress)
        data = bytearray(path.read_bytes())
        data[-100] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(ValueError, match="corrupt"):
            load_ticket_export(path)
        path.write_bytes(bytes(data[: len(data) // 2]))
        with pytest.raises(ValueError, match="corrupt"):
            load_ticket_export(path)


def test_bad_export_requests_are_rejected(tmp_path) -> None:
    state, masks = _ticket(0.5)
    with pytest.raises(ValueError, match="values='bf16'"):
        export_ticket(state, masks, tmp_path / "t.lst", values="bf16")  # type: ignore[arg-type]
    name = next(iter(masks))
    unpruned = {**state, name: torch.ones_like(state[name])}
    with pytest.raises(ValueError, match="nonzero pruned entries"):
        export_ticket(unpruned, masks, tmp_path / "t.lst")
    with pytest.raises(ValueError, match="names no tensor"):
        export_ticket(state, {**masks, "missing.weight": masks[name]}, tmp_path / "t.lst")
    assert not (tmp_path / "t.lst").exists()
