"""clear_ray: distributed, mask-free removal of hard-burned subtitles (CLEAR on Ray).

Importing this package stays light on purpose: torch, diffsynth and ray are imported
inside the functions and actors that need them, so the CLI starts fast and a Ray
driver does not pay for a model it never loads.
"""

__version__ = "0.1.0"
