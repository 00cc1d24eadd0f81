"""Ray Train plumbing shared by the Stage I and Stage II trainers.

``settings`` (the run's pydantic settings), ``storage`` (where Ray Train keeps checkpoints:
local or s3://), ``checkpoints`` (model + optimizer + scheduler + step + RNG, loadable with
safetensors / ``torch.load(weights_only=True)``), ``data`` (the sample plan through Ray
Data, frames decoded inside the workers) and ``runner`` (the TorchTrainer both stages
build). Light at import: torch and ray are imported inside functions.
"""
