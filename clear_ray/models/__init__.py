"""The Wan model code shared by inference (the ``clear`` remover) and Stage II training.

    files.py       what a model dir holds, architectures, identity (no torch)
    wan.py         Wan model files -> DiffSynth models and a WanVideoPipeline
    denoise.py     one window through DiffSynth's units (control latents, DiT pass, Euler)
    lora.py        LoRA files: read, match, fuse, write (CLEAR's layout + rank/alpha)
    lora_peft.py   trainable PEFT LoRA on the DiT and its factors in that layout
    resolution.py  CLEAR's model resolution rule

The only package that imports DiffSynth (inside functions: importing it costs ~8 s).
"""
