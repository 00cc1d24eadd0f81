"""Loading CLEAR from a model dir: the documented errors, architecture detection for tiny
files and (on the meta device) for the real 1.3B Fun-Control V1.1 layout, fingerprints."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch

from clear_ray.config import RemoverConfig
from clear_ray.models.files import FUN_CONTROL_V11_1P3B_DIT, ClearModelError, locate_model_files
from clear_ray.models.lora import match_lora, parse_lora
from clear_ray.models.wan import detect_architecture, load_component
from clear_ray.removers import load_remover, model_fingerprint
from clear_ray.removers.clear import ClearRemover
from clear_ray.testing.tiny_wan import (
    TINY_DIT, CodePayload, TinyClearModel, lora_state_dict, write_tiny_model_dir,
)


def _config(model: TinyClearModel, composite: bool = True, **clear) -> RemoverConfig:
    return RemoverConfig(backend="clear", composite=composite,
                         clear={"model_dir": model.model_dir, "lora": model.lora_path, "steps": 1, **clear})


@pytest.fixture
def model_copy(tiny_clear_model, tmp_path) -> TinyClearModel:
    model_dir = shutil.copytree(tiny_clear_model.model_dir, tmp_path / "model")
    lora_path = shutil.copy(tiny_clear_model.lora_path, tmp_path / "clear_lora.pt")
    return TinyClearModel(model_dir=model_dir, lora_path=lora_path, lora_rank=tiny_clear_model.lora_rank)


@pytest.mark.parametrize("missing, message", [
    ("Wan2.1_VAE.pth", "lacks Wan2.1_VAE.pth (the Wan video VAE)"),
    ("models_t5_umt5-xxl-enc-bf16.pth", "lacks models_t5_umt5-xxl-enc-bf16.pth (the umt5-xxl text encoder)"),
    ("diffusion_pytorch_model.safetensors",
     "lacks diffusion_pytorch_model*.safetensors (the Wan2.1-Fun-V1.1-1.3B-Control DiT weights)"),
    ("google/umt5-xxl/tokenizer_config.json", "lacks google/umt5-xxl/tokenizer_config.json (the umt5-xxl tokenizer)"),
])
def test_a_missing_file_is_one_error_naming_it_and_its_purpose(model_copy, missing, message):
    (model_copy.model_dir / missing).unlink()
    config = _config(model_copy)
    for attempt in (lambda: load_remover(config, device="cpu"), lambda: model_fingerprint(config)):
        with pytest.raises(ClearModelError, match=re.escape(message)) as caught:
            attempt()
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("clear, message", [
    ({"model_dir": None}, "model_dir is not set"),
    ({"lora": None}, "lora is not set"),
    ({"lora": "/nonexistent/clear.pt"}, "does not exist (the CLEAR LoRA checkpoint)"),
    ({"model_dir": "/nonexistent/model"}, "is not a directory"),
])
def test_unset_or_absent_paths_are_named(tiny_clear_model, clear, message):
    with pytest.raises(ClearModelError, match=re.escape(message)):
        ClearRemover.fingerprint_for(_config(tiny_clear_model, **clear))


def test_tiny_files_load_through_the_same_loader_with_their_declared_architecture(tiny_clear_model):
    from diffsynth.models.wan_video_dit import WanModel

    dit = load_component(locate_model_files(tiny_clear_model.model_dir), "dit", "cpu", torch.float32)
    assert isinstance(dit, WanModel) and dit.in_dim == 48 and len(dit.blocks) == TINY_DIT["num_layers"]
    assert all(p.dtype == torch.float32 and p.device.type == "cpu" for p in dit.parameters())


def test_a_plain_t2v_dit_is_rejected(tmp_path):
    model_dir = write_tiny_model_dir(tmp_path / "t2v", dit_overrides={"in_dim": 16, "has_image_input": False,
                                                                      "has_ref_conv": False})
    with pytest.raises(ClearModelError, match="in_dim 16.*Fun-Control"):
        load_component(locate_model_files(model_dir), "dit", "cpu", torch.float32)


def test_an_unknown_layout_without_architecture_file_is_rejected(model_copy):
    (model_copy.model_dir / "clear_ray_architecture.json").unlink()
    with pytest.raises(ClearModelError, match="layout DiffSynth does not recognise .* no clear_ray_architecture.json"):
        load_remover(_config(model_copy), device="cpu")


def test_an_architecture_file_that_does_not_fit_the_weights_is_rejected(model_copy):
    path = model_copy.model_dir / "clear_ray_architecture.json"
    spec = json.loads(path.read_text())
    spec["dit"]["num_layers"] = 3
    path.write_text(json.dumps(spec))
    with pytest.raises(ClearModelError, match="does not fit the dit architecture from clear_ray_architecture.json"):
        load_remover(_config(model_copy), device="cpu")


def test_corrupt_or_code_carrying_weight_files_are_refused(model_copy, tmp_path):
    vae = model_copy.model_dir / "Wan2.1_VAE.pth"
    vae.write_bytes(b"garbage")
    with pytest.raises(ClearModelError, match="Wan2.1_VAE.pth \\(the Wan video VAE\\) cannot be read"):
        load_remover(_config(model_copy), device="cpu")
    marker = tmp_path / "payload-ran"
    torch.save({"encoder.conv1.weight": torch.zeros(1), "x": CodePayload(marker)}, vae)
    with pytest.raises(ClearModelError, match="cannot be read"):
        load_remover(_config(model_copy), device="cpu")
    assert not marker.exists()


def test_real_size_fun_control_layout_is_detected_and_takes_the_full_clear_lora():
    """No real weights here: the real 1.3B layout on the meta device goes through the same
    detection as the published file (DiffSynth's hash of keys and shapes)."""
    from diffsynth.models.wan_video_dit import WanModel

    with torch.device("meta"):
        dit = WanModel(**FUN_CONTROL_V11_1P3B_DIT)
    architecture = detect_architecture("dit", dit.state_dict(), None, "meta DiT")
    # DiffSynth's entry for PAI/Wan2.1-Fun-V1.1-1.3B-Control, and our own record, agree.
    assert architecture.source == "DiffSynth layout hash 70ddad9d3a133785da5ea371aae09504"
    assert architecture.kwargs == FUN_CONTROL_V11_1P3B_DIT

    full_set = lora_state_dict(30, 1536, 8960, 64, prefix="", device="meta")
    assert len(full_set) == 30 * 10 * 2  # q,k,v,o x (self, cross) + ffn.0, ffn.2; A and B
    lora = parse_lora(full_set, "clear.pt")
    assert len(match_lora(dit, lora)) == 300 and lora.tensor_count == 600 and lora.ranks == [64]

    with pytest.raises(ClearModelError, match="10 of the 310 LoRA layers"):
        match_lora(dit, parse_lora(lora_state_dict(31, 1536, 8960, 64, prefix="", device="meta"), "x.pt"))
    with pytest.raises(ClearModelError, match="another model size"):  # a 14B LoRA
        match_lora(dit, parse_lora(lora_state_dict(30, 5120, 13824, 64, prefix="", device="meta"), "x.pt"))


def test_real_size_encoder_and_vae_layouts_and_wrong_models_are_detected():
    from diffsynth.models.wan_video_dit import WanModel
    from diffsynth.models.wan_video_text_encoder import WanTextEncoder
    from diffsynth.models.wan_video_vae import WanVideoVAE

    with torch.device("meta"):
        text_encoder = WanTextEncoder()
        vae = WanVideoVAE()
        t2v = WanModel(**{**FUN_CONTROL_V11_1P3B_DIT, "in_dim": 16, "has_image_input": False, "has_ref_conv": False})
    assert detect_architecture("text_encoder", text_encoder.state_dict(), None, "t5").source.endswith(
        "9c8818c2cbea55eca56c7b447df170da")
    vae_file_layout = {k.removeprefix("model."): v for k, v in vae.state_dict().items()}  # as Wan2.1_VAE.pth
    assert detect_architecture("vae", vae_file_layout, None, "vae").source.endswith("ccc42284ea13e1ad04693284c7a09be6")
    with pytest.raises(ClearModelError, match="in_dim 16.*Wan2.1-T2V-1.3B"):
        detect_architecture("dit", t2v.state_dict(), None, "t2v")
    with pytest.raises(ClearModelError, match="is DiffSynth's wan_video_vae .* not the Wan2.1-Fun"):
        detect_architecture("dit", vae_file_layout, None, "a VAE saved as DiT")


def test_fingerprint_is_stable_and_changes_with_what_changes_the_output(model_copy):
    base = model_fingerprint(_config(model_copy))
    assert base == model_fingerprint(_config(model_copy)) and base.startswith("clear-")
    variants = [_config(model_copy, lora_scale=0.5), _config(model_copy, steps=2), _config(model_copy, seed=1),
                _config(model_copy, composite=False), _config(model_copy, mask={"threshold": 30}),
                _config(model_copy, prompt="remove text")]
    fingerprints = {model_fingerprint(config) for config in variants}
    assert base not in fingerprints and len(fingerprints) == len(variants)
    assert model_fingerprint(_config(model_copy, compile=True)) == base  # same output, only faster
    torch.save({"model_state_dict": lora_state_dict(2, 64, 128, 4, seed=99)}, model_copy.lora_path)
    changed_lora = model_fingerprint(_config(model_copy))
    write_tiny_model_dir(model_copy.model_dir, seed=5)
    assert len({base, changed_lora, model_fingerprint(_config(model_copy))}) == 3


def test_the_driver_computes_the_fingerprint_without_torch_or_diffsynth(tiny_clear_model):
    script = (
        "import sys; from clear_ray.config import RemoverConfig; from clear_ray.removers import model_fingerprint; "
        f"c = RemoverConfig(backend='clear', clear={{'model_dir': {str(tiny_clear_model.model_dir)!r}, "
        f"'lora': {str(tiny_clear_model.lora_path)!r}}}); print(model_fingerprint(c)); "
        "print(sorted(m for m in ('torch', 'diffsynth') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    fingerprint, heavy = result.stdout.split()[:2]
    assert fingerprint.startswith("clear-") and heavy == "[]"
