"""Read, match, fuse and write CLEAR LoRA files (torch only, no PEFT at run time).

The released checkpoint is a dict with ``model_state_dict`` (or ``dit_state_dict``) that
holds only LoRA factors of the DiT, in PEFT naming::

    pipe.dit.blocks.0.self_attn.q.lora_A.default.weight   (rank, in_features)
    pipe.dit.blocks.0.self_attn.q.lora_B.default.weight   (out_features, rank)

possibly prefixed ``pipe.dit.``, ``module.`` or ``_orig_mod.``. CLEAR injects it with
``lora_alpha = lora_scale * rank``, so PEFT's scaling alpha/rank is ``lora_scale`` and
the layer computes ``W x + lora_scale * B (A x)``. Fusing ``W += lora_scale * B A`` once
gives the same layer at the base model's speed.

Files written by ``write_lora`` (Stage II) also store ``lora_rank`` and ``lora_alpha``
(next to ``model_state_dict`` in a .pt, in the header metadata of a .safetensors). Such a
file's layers compute ``W x + strength * (alpha / rank) * B (A x)``, with ``strength`` the
``lora_scale`` setting (1.0 = as trained): a LoRA trained with alpha != rank cannot be
applied at the wrong scale. A file without them (CLEAR's release) takes ``lora_scale`` as
CLEAR's alpha / rank, exactly as before.

Every LoRA layer must land on a Linear of the DiT with matching shapes: a partial match
means the checkpoint was made for another model, and running without part of the LoRA
would silently produce something that is not CLEAR.
"""

from __future__ import annotations

import logging
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from clear_ray.models.files import ClearModelError

log = logging.getLogger(__name__)

# CLEAR's peft target_modules "q,k,v,o,ffn.0,ffn.2": the q/k/v/o projections of self- and
# cross-attention and both FFN layers of every DiT block.
CLEAR_TARGETS = ("q", "k", "v", "o", "ffn.0", "ffn.2")
STATE_DICT_KEYS = ("model_state_dict", "dit_state_dict")
RANK_KEY, ALPHA_KEY = "lora_rank", "lora_alpha"  # stored by write_lora
KEY_PREFIXES = ("pipe.dit.", "module.", "_orig_mod.")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# <layer>.lora_A[.<adapter>].weight  (PEFT names carry the adapter, e.g. "default")
_FACTOR = re.compile(r"^(?P<layer>.+)\.lora_(?P<which>[AB])(?:\.(?P<adapter>[^.]+))?\.weight$")


@dataclass(frozen=True)
class LoraWeights:
    path: Path
    # layer name in the DiT -> (A: (rank, in_features), B: (out_features, rank))
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]
    alpha: float | None = None  # stored lora_alpha (with lora_rank) or None (CLEAR's release)

    @property
    def stored_scale(self) -> float:
        """alpha / rank for a file that stores them, else 1 (``lora_scale`` is the scale)."""
        return 1.0 if self.alpha is None else self.alpha / self.ranks[0]

    @property
    def tensor_count(self) -> int:
        return 2 * len(self.factors)

    @property
    def ranks(self) -> list[int]:
        return sorted({int(a.shape[0]) for a, _ in self.factors.values()})


def read_lora_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, object]]:
    """The flat tensor dict inside a ``.safetensors`` or torch checkpoint, prefixes removed,
    and the stored ``lora_rank`` / ``lora_alpha`` (an empty dict when the file has none).

    Torch checkpoints are read with ``weights_only=True``: a pickle that would run code
    (or build any object beyond tensors and plain containers) is refused, not executed.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ClearModelError(f"LoRA file {path} does not exist (the CLEAR LoRA checkpoint)")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                raw = {key: handle.get_tensor(key) for key in handle.keys()}
                header = handle.metadata() or {}
        except (SafetensorError, OSError, ValueError) as error:
            raise ClearModelError(f"LoRA file {path} is not a readable safetensors file ({_first_line(error)})") from None
        metadata = {key: header[key] for key in (RANK_KEY, ALPHA_KEY) if key in header}
    elif path.suffix in TORCH_SUFFIXES:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
        except pickle.UnpicklingError as error:
            detail = _unpickler_detail(error)
            if "global" in detail.lower():
                raise ClearModelError(f"LoRA file {path} was refused: it pickles Python objects beyond tensors, "
                                      f"and loading it could run code ({detail})") from None
            raise ClearModelError(f"LoRA file {path} is not a readable torch checkpoint ({detail})") from None
        except (RuntimeError, OSError, EOFError, ValueError) as error:
            raise ClearModelError(f"LoRA file {path} is not a readable torch checkpoint ({_first_line(error)})") from None
        raw, metadata = _unwrap(raw, path)
    else:
        raise ClearModelError(f"LoRA file {path} has suffix {path.suffix!r}; expected .safetensors "
                              f"or one of {', '.join(TORCH_SUFFIXES)}")
    return _strip_prefixes(raw, path), metadata


def parse_lora(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, object] | None = None) -> LoraWeights:
    """Pair every ``lora_A`` with its ``lora_B``; anything else in the file is an error."""
    halves: dict[str, dict[str, torch.Tensor]] = {}
    adapters: set[str] = set()
    strangers: list[str] = []
    for key, tensor in state_dict.items():
        match = _FACTOR.match(key)
        if match is None or tensor.ndim != 2:
            strangers.append(key)
            continue
        adapters.add(match["adapter"] or "")
        halves.setdefault(match["layer"], {})[match["which"]] = tensor
    if strangers:
        raise ClearModelError(f"LoRA file {path} holds {len(strangers)} tensors that are not 2-D LoRA factors "
                              f"(e.g. {strangers[0]!r}); a CLEAR checkpoint holds only lora_A/lora_B weights")
    if not halves:
        raise ClearModelError(f"LoRA file {path} holds no LoRA tensors")
    if len(adapters) > 1:
        raise ClearModelError(f"LoRA file {path} mixes several adapters {sorted(adapters)}; expected one")
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for layer, pair in sorted(halves.items()):
        if set(pair) != {"A", "B"}:
            missing = "lora_B" if "A" in pair else "lora_A"
            raise ClearModelError(f"LoRA file {path}: layer {layer!r} has no {missing}")
        down, up = pair["A"], pair["B"]
        if down.shape[0] != up.shape[1]:
            raise ClearModelError(f"LoRA file {path}: layer {layer!r} has lora_A {tuple(down.shape)} and "
                                  f"lora_B {tuple(up.shape)}, whose ranks differ")
        factors[layer] = (down, up)
    return LoraWeights(path=path, factors=factors, alpha=_stored_alpha(metadata or {}, factors, path))


def load_lora(path: str | Path) -> LoraWeights:
    path = Path(path).expanduser()
    tensors, metadata = read_lora_file(path)
    return parse_lora(tensors, path, metadata)


def _stored_alpha(metadata: dict[str, object], factors: dict, path: Path) -> float | None:
    """The stored alpha, after checking the stored rank is every layer's rank."""
    if not metadata:
        return None
    if set(metadata) != {RANK_KEY, ALPHA_KEY}:
        raise ClearModelError(f"LoRA file {path} stores {sorted(metadata)}; {RANK_KEY} and {ALPHA_KEY} go together")
    try:
        rank, alpha = int(str(metadata[RANK_KEY])), float(str(metadata[ALPHA_KEY]))
    except ValueError:
        raise ClearModelError(f"LoRA file {path} stores {RANK_KEY}={metadata[RANK_KEY]!r}, "
                              f"{ALPHA_KEY}={metadata[ALPHA_KEY]!r}; expected numbers") from None
    ranks = sorted({int(down.shape[0]) for down, _ in factors.values()})
    if ranks != [rank]:
        raise ClearModelError(f"LoRA file {path} stores {RANK_KEY} {rank} but its factors have rank "
                              f"{'/'.join(map(str, ranks))}")
    if not (alpha > 0 and alpha < float("inf")):
        raise ClearModelError(f"LoRA file {path} stores {ALPHA_KEY} {alpha}; expected a positive number")
    return alpha


def match_lora(model: torch.nn.Module, lora: LoraWeights) -> dict[str, torch.nn.Linear]:
    """The Linear layer of ``model`` each LoRA layer belongs to; every one must match."""
    modules = dict(model.named_modules())
    matched: dict[str, torch.nn.Linear] = {}
    unmatched: list[str] = []
    for layer, (down, up) in lora.factors.items():
        module = modules.get(layer)
        if not isinstance(module, torch.nn.Linear):
            unmatched.append(layer)
            continue
        if down.shape[1] != module.in_features or up.shape[0] != module.out_features:
            raise ClearModelError(
                f"LoRA file {lora.path}: layer {layer!r} is ({up.shape[0]} x {down.shape[1]}) but the DiT's is "
                f"({module.out_features} x {module.in_features}); the LoRA was made for another model size")
        matched[layer] = module
    if not matched:
        raise ClearModelError(
            f"none of the {len(lora.factors)} LoRA layers in {lora.path} exists in the DiT (e.g. {unmatched[0]!r}); "
            f"is it a LoRA for another base model?")
    if unmatched:
        raise ClearModelError(
            f"{len(unmatched)} of the {len(lora.factors)} LoRA layers in {lora.path} have no counterpart in the DiT "
            f"(e.g. {unmatched[0]!r}); refusing to run with part of the LoRA")
    return matched


@torch.no_grad()
def fuse_lora(model: torch.nn.Module, lora: LoraWeights, strength: float) -> int:
    """``W += strength * stored_scale * B @ A`` for every LoRA layer (in fp32, rounded once
    to W's dtype). Returns how many LoRA tensors were fused (two per layer)."""
    scale = strength * lora.stored_scale
    for layer, module in match_lora(model, lora).items():
        down, up = lora.factors[layer]
        weight = module.weight
        delta = up.to(weight.device, torch.float32) @ down.to(weight.device, torch.float32)
        weight.copy_((weight.float() + scale * delta).to(weight.dtype))
    log.info("CLEAR LoRA: %d of %d tensors matched and fused (%d layers, rank %s, scale %g) from %s",
             lora.tensor_count, lora.tensor_count, len(lora.factors),
             "/".join(map(str, lora.ranks)), scale, lora.path)
    return lora.tensor_count


def clear_target_layers(model: torch.nn.Module) -> dict[str, torch.nn.Linear]:
    """The Linear layers CLEAR's LoRA adapts, found as PEFT finds target_modules (by the
    end of the layer's name)."""
    return {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
            and any(name == target or name.endswith("." + target) for target in CLEAR_TARGETS)}


def _unwrap(raw: object, path: Path) -> tuple[dict, dict[str, object]]:
    if not isinstance(raw, dict):
        raise ClearModelError(f"LoRA file {path} holds a {type(raw).__name__}, not a dict of tensors")
    for key in STATE_DICT_KEYS:
        if key in raw:
            inner = raw[key]
            if not isinstance(inner, dict):
                raise ClearModelError(f"LoRA file {path}: {key!r} is a {type(inner).__name__}, not a dict of tensors")
            return inner, {name: raw[name] for name in (RANK_KEY, ALPHA_KEY) if name in raw}
    return raw, {}


def _strip_prefixes(raw: dict, path: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise ClearModelError(f"LoRA file {path} holds {key!r} = {type(value).__name__}; expected only tensors "
                                  f"(or a {' / '.join(STATE_DICT_KEYS)} dict of them)")
        name = key
        while name.startswith(KEY_PREFIXES):
            name = name[len(next(p for p in KEY_PREFIXES if name.startswith(p))):]
        if name in tensors:
            raise ClearModelError(f"LoRA file {path} holds {name!r} twice (with different prefixes)")
        tensors[name] = value
    return tensors


def _unpickler_detail(error: BaseException) -> str:
    # torch wraps the reason ("Unsupported global: GLOBAL os.system ...") in paragraphs of advice.
    text = str(error)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:200] if lines else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def lora_tensors(factors: dict[str, tuple[torch.Tensor, torch.Tensor]], adapter: str = "default"
                 ) -> dict[str, torch.Tensor]:
    """The key layout a written file holds: ``<layer>.lora_A.<adapter>.weight`` / ``lora_B``."""
    tensors: dict[str, torch.Tensor] = {}
    for layer, (down, up) in sorted(factors.items()):
        tensors[f"{layer}.lora_A.{adapter}.weight"] = down
        tensors[f"{layer}.lora_B.{adapter}.weight"] = up
    return tensors


def lora_file_bytes(factors: dict[str, tuple[torch.Tensor, torch.Tensor]], *, rank: int, alpha: float,
                    suffix: str, adapter: str = "default") -> bytes:
    """A LoRA file ``load_lora`` reads back as these factors at scale alpha / rank: CLEAR's
    released layout (PEFT names under ``model_state_dict`` in a .pt; flat in a
    .safetensors) plus ``lora_rank`` / ``lora_alpha``. Factors are stored as given (fp32
    from training), so the file reproduces the trained layers to float precision."""
    import io

    ranks = sorted({int(down.shape[0]) for down, _ in factors.values()})
    if ranks != [int(rank)]:
        raise ValueError(f"rank {rank} given but the factors have rank {'/'.join(map(str, ranks))}")
    tensors = {key: tensor.detach().to("cpu").contiguous() for key, tensor in lora_tensors(factors, adapter).items()}
    if suffix == ".safetensors":
        from safetensors.torch import save

        return save(tensors, metadata={RANK_KEY: str(int(rank)), ALPHA_KEY: repr(float(alpha))})
    if suffix not in TORCH_SUFFIXES:
        raise ValueError(f"LoRA suffix {suffix!r}: expected .safetensors or one of {', '.join(TORCH_SUFFIXES)}")
    buffer = io.BytesIO()
    torch.save({STATE_DICT_KEYS[0]: tensors, RANK_KEY: int(rank), ALPHA_KEY: float(alpha)}, buffer)
    return buffer.getvalue()


def write_lora(uri: str, factors: dict[str, tuple[torch.Tensor, torch.Tensor]], *, rank: int, alpha: float,
               storage_options: dict | None = None) -> str:
    """``lora_file_bytes`` written atomically to a local path or s3:// URI (suffix picks the format)."""
    from clear_ray.storage import write_bytes_atomic

    suffix = Path(uri.split("?")[0]).suffix
    write_bytes_atomic(uri, lora_file_bytes(factors, rank=rank, alpha=alpha, suffix=suffix), storage_options)
    return uri
