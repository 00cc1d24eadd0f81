"""Stage II: a LoRA on the frozen Wan DiT plus the paper's occlusion head, on Ray Train.

    config.py       Stage2Config (the LoRA, head, objective, optimisation, run)
    model.py        OcclusionHead, Stage2Model (LoRA-injected DiT + head)
    losses.py       the paper's objective and CLEAR's released variant
    samples.py      plan position -> window pixels / cached latents, latent-grid prior
    engine.py       one worker's models, latents and micro-step loss; its own denoising
    checkpoint.py   trainable tensors + optimizer/scheduler/step/RNG (weights_only-safe)
    parallel.py     ddp / fsdp (FSDP2) wrapping; whole-tensor checkpoint state under either
    recipe.py       train_stage2 (driver) and train_loop_per_worker (Ray Train)
    export.py       checkpoint -> LoRA (.safetensors and CLEAR's .pt) + occlusion head
    latent_cache.py Ray Data job: VAE latents of every pair once, on GPU actors

Light at import: torch, ray and diffsynth load inside functions.
"""
