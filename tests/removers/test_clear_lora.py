"""The CLEAR LoRA reader, matcher and fuser on real files written in CLEAR's layouts."""

from __future__ import annotations

import pickle

import pytest
import torch

from clear_ray.models.lora import fuse_lora, load_lora, match_lora, parse_lora
from clear_ray.models.files import ClearModelError
from clear_ray.testing.tiny_wan import LORA_TARGETS, TINY_DIT, CodePayload, build_tiny_dit, lora_state_dict, write_tiny_lora


def _factors_equal(left, right) -> bool:
    return left.keys() == right.keys() and all(
        torch.equal(left[k][0], right[k][0]) and torch.equal(left[k][1], right[k][1]) for k in left)


@pytest.mark.parametrize("name, options", [
    ("wrapped.pt", {"wrapper": "model_state_dict", "prefix": "pipe.dit."}),
    ("dit_wrapped.pt", {"wrapper": "dit_state_dict", "prefix": "module._orig_mod."}),
    ("bare.pth", {"wrapper": None, "prefix": "_orig_mod.pipe.dit."}),
    ("no_adapter.bin", {"wrapper": "model_state_dict", "prefix": "", "adapter": None}),
    ("plain.safetensors", {"prefix": "pipe.dit."}),
])
def test_every_released_layout_reads_to_the_same_layers(tmp_path, name, options):
    reference = load_lora(write_tiny_lora(tmp_path / "reference.pt"))
    lora = load_lora(write_tiny_lora(tmp_path / name, **options))
    assert _factors_equal(lora.factors, reference.factors)
    layers = {f"blocks.{b}.{t}" for b in range(TINY_DIT["num_layers"]) for t in LORA_TARGETS}
    assert set(lora.factors) == layers
    assert lora.tensor_count == 2 * len(layers) and lora.ranks == [4]


def test_rank_is_read_from_the_tensors(tmp_path):
    assert load_lora(write_tiny_lora(tmp_path / "r8.pt", rank=8)).ranks == [8]


def test_a_pickled_code_payload_is_refused_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.pt"
    torch.save({"model_state_dict": {"blocks.0.self_attn.q.lora_A.default.weight": torch.zeros(4, 64)},
                "hook": CodePayload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):  # the payload really is code (sanity)
        torch.load(path, weights_only=True)
    with pytest.raises(ClearModelError, match="refused"):
        load_lora(path)
    assert not marker.exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda sd: sd.pop("blocks.0.ffn.0.lora_B.default.weight"), "has no lora_B"),
    (lambda sd: sd.update({"blocks.0.ffn.0.lora_B.default.weight": torch.zeros(128, 3)}), "ranks differ"),
    (lambda sd: sd.update({"blocks.0.norm3.weight": torch.zeros(64, 64)}), "not 2-D LoRA factors"),
    (lambda sd: sd.update({"blocks.9.ffn.0.lora_A.other.weight": torch.zeros(4, 64),
                           "blocks.9.ffn.0.lora_B.other.weight": torch.zeros(128, 4)}), "several adapters"),
    (lambda sd: sd.clear(), "no LoRA tensors"),
])
def test_malformed_state_dicts_are_rejected(tmp_path, mutate, message):
    state_dict = lora_state_dict(2, 64, 128, 4, prefix="")
    mutate(state_dict)
    with pytest.raises(ClearModelError, match=message):
        parse_lora(state_dict, tmp_path / "x.pt")


@pytest.mark.parametrize("name, content, message", [
    ("missing.pt", None, "does not exist"),
    ("corrupt.pt", b"not a checkpoint", "not a readable torch checkpoint"),
    ("corrupt.safetensors", b"\x00" * 16, "not a readable safetensors"),
    ("weights.npz", b"whatever", "expected .safetensors"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ClearModelError, match=message) as caught:
        load_lora(path)
    assert "\n" not in str(caught.value)


def test_non_tensor_entries_are_rejected(tmp_path):
    path = tmp_path / "list.pt"
    torch.save({"model_state_dict": {"blocks.0.self_attn.q.lora_A.default.weight": [1, 2, 3]}}, path)
    with pytest.raises(ClearModelError, match="expected only tensors"):
        load_lora(path)


def test_zero_matches_is_an_error(tmp_path):
    # A diffusers-style LoRA (another naming scheme, another model): nothing lands.
    state_dict = {"transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 64),
                  "transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(64, 4)}
    with pytest.raises(ClearModelError, match="none of the 1 LoRA layers"):
        match_lora(build_tiny_dit(), parse_lora(state_dict, tmp_path / "x.pt"))


def test_partial_matches_are_an_error_not_a_warning(tmp_path):
    # Made for a 3-block model: block 2 has no counterpart in the 2-block DiT.
    lora = parse_lora(lora_state_dict(3, 64, 128, 4, prefix=""), tmp_path / "x.pt")
    with pytest.raises(ClearModelError, match="10 of the 30 LoRA layers .* no counterpart"):
        match_lora(build_tiny_dit(), lora)


def test_shape_mismatch_is_an_error(tmp_path):
    lora = parse_lora(lora_state_dict(2, 96, 192, 4, prefix=""), tmp_path / "x.pt")
    with pytest.raises(ClearModelError, match="made for another model size"):
        match_lora(build_tiny_dit(), lora)


def test_fuse_adds_scale_times_b_a_and_scale_zero_changes_nothing(tmp_path):
    lora = load_lora(write_tiny_lora(tmp_path / "lora.pt"))
    base = build_tiny_dit()
    untouched = build_tiny_dit()
    assert fuse_lora(untouched, lora, 0.0) == lora.tensor_count == 40
    for (name, before), after in zip(base.state_dict().items(), untouched.state_dict().values()):
        assert torch.equal(before, after), name

    fused = build_tiny_dit()
    fuse_lora(fused, lora, 0.7)
    down, up = lora.factors["blocks.1.ffn.0"]
    expected = base.blocks[1].ffn[0].weight + 0.7 * up @ down
    torch.testing.assert_close(fused.blocks[1].ffn[0].weight, expected)
    changed = [n for (n, a), b in zip(base.state_dict().items(), fused.state_dict().values()) if not torch.equal(a, b)]
    assert sorted(changed) == sorted(f"{layer}.weight" for layer in lora.factors)
