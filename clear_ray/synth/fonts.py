"""Real subtitle fonts, found on this machine at run time, and their glyph coverage.

Fonts come from Debian packages (``fonts-noto-core``, ``fonts-noto-cjk``,
``fonts-dejavu-core``); nothing is copied into this repository. Each language has three
disjoint groups of faces, one per split (``train`` for training pairs and the lite
segmenter, ``dev`` and ``test`` for the benchmark), so a remover tuned on ``dev`` is judged
on typefaces it has never seen and no training run sees a benchmark face. Families are
disjoint too, except that the only CJK families installed are Noto Sans CJK and Noto
Serif CJK: ``test`` keeps the Serif family to itself, ``dev`` uses the Sans faces of each
language's own region and ``train`` the Sans faces of other regions (TC, HK). A collection file (``.ttc``) holds several faces: the CJK
face is chosen by its family name (``Noto Sans CJK SC`` for Chinese, ``JP``, ``KR``), never
by a hard-coded index.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

# Directories searched, in order; CLEAR_RAY_FONT_DIRS (os.pathsep-separated) comes first.
FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")

# Font file -> the Debian package that ships it (for the "how to install" error).
_PACKAGE_BY_PREFIX = (("NotoSansCJK", "fonts-noto-cjk"), ("NotoSerifCJK", "fonts-noto-cjk"),
                      ("Noto", "fonts-noto-core"), ("DejaVu", "fonts-dejavu-core"))

_LATIN_DEV = (("NotoSans-Regular.ttf", None), ("NotoSans-Bold.ttf", None),
              ("DejaVuSerif.ttf", None), ("DejaVuSerif-Bold.ttf", None))
_LATIN_TEST = (("NotoSerif-Regular.ttf", None), ("NotoSerif-Bold.ttf", None),
               ("DejaVuSans.ttf", None), ("DejaVuSans-Bold.ttf", None))
_LATIN_TRAIN = (("NotoSansDisplay-Regular.ttf", None), ("NotoSansDisplay-Bold.ttf", None),
                ("DejaVuSerifCondensed.ttf", None), ("DejaVuSerifCondensed-Bold.ttf", None))
_CJK_TRAIN = tuple((f"NotoSansCJK-{weight}.ttc", f"Noto Sans CJK {region}")
                   for region in ("TC", "HK") for weight in ("Regular", "Bold"))


def _cjk(region: str, serif: bool) -> tuple[tuple[str, str], ...]:
    kind = "Serif" if serif else "Sans"
    family = f"Noto {kind} CJK {region}"
    return ((f"Noto{kind}CJK-Regular.ttc", family), (f"Noto{kind}CJK-Bold.ttc", family))


# language -> split -> ((file name, family name inside a .ttc or None), ...).
# Faces are disjoint between the splits (Sans / Kufi / Naskh for Arabic; see above for CJK).
FACES_BY_LANGUAGE: dict[str, dict[str, tuple[tuple[str, str | None], ...]]] = {
    "en": {"train": _LATIN_TRAIN, "dev": _LATIN_DEV, "test": _LATIN_TEST},
    "fr": {"train": _LATIN_TRAIN, "dev": _LATIN_DEV, "test": _LATIN_TEST},
    "de": {"train": _LATIN_TRAIN, "dev": _LATIN_DEV, "test": _LATIN_TEST},
    "ru": {"train": _LATIN_TRAIN, "dev": _LATIN_DEV, "test": _LATIN_TEST},
    "ar": {"train": (("NotoKufiArabic-Regular.ttf", None), ("NotoKufiArabic-Bold.ttf", None)),
           "dev": (("NotoSansArabic-Regular.ttf", None), ("NotoSansArabic-Bold.ttf", None)),
           "test": (("NotoNaskhArabic-Regular.ttf", None), ("NotoNaskhArabic-Bold.ttf", None))},
    "zh": {"train": _CJK_TRAIN, "dev": _cjk("SC", serif=False), "test": _cjk("SC", serif=True)},
    "ja": {"train": _CJK_TRAIN, "dev": _cjk("JP", serif=False), "test": _cjk("JP", serif=True)},
    "ko": {"train": _CJK_TRAIN, "dev": _cjk("KR", serif=False), "test": _cjk("KR", serif=True)},
}


class FontMissing(FileNotFoundError):
    """A needed font file is not installed; the message names the Debian package."""


@dataclass(frozen=True)
class FontFace:
    """One face: a font file plus the face index inside it (0 for plain .ttf/.otf)."""

    path: str
    index: int
    family: str

    @property
    def file_name(self) -> str:
        return Path(self.path).name

    def pil_font(self, size_px: int):
        """A PIL font at ``size_px`` with Raqm layout (shaping, bidi), for rendering."""
        return _pil_font(self.path, self.index, int(size_px))

    def missing_chars(self, text: str) -> list[str]:
        """Characters of ``text`` that this face has no glyph for (they would render as
        tofu boxes). Whitespace and control/format characters need no glyph."""
        cmap = _codepoints(self.path, self.index)
        missing = []
        for char in dict.fromkeys(text):
            if char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
                continue
            if ord(char) not in cmap:
                missing.append(char)
        return missing

    def covers(self, text: str) -> bool:
        return not self.missing_chars(text)


def debian_package_for(file_name: str) -> str:
    for prefix, package in _PACKAGE_BY_PREFIX:
        if file_name.startswith(prefix):
            return package
    return "a package providing it"


def find_font_file(file_name: str) -> Path:
    """Locate an installed font file by name, or raise FontMissing naming its package."""
    found = _font_index().get(file_name)
    if found is None:
        package = debian_package_for(file_name)
        raise FontMissing(f"font {file_name} is not installed (searched {', '.join(_search_dirs())}); "
                          f"install the Debian package {package} (apt-get install {package})")
    return found


def faces_for(language: str, split: str) -> list[FontFace]:
    """Every face used for ``language`` in split ``split`` ('train', 'dev' or 'test')."""
    try:
        entries = FACES_BY_LANGUAGE[language][split]
    except KeyError:
        raise ValueError(f"no fonts defined for language {language!r} split {split!r}; "
                         f"languages: {sorted(FACES_BY_LANGUAGE)}, splits: train, dev, test") from None
    return [load_face(file_name, family) for file_name, family in entries]


def installed_font_files() -> dict[str, Path]:
    """Every font file found in the search directories: file name -> path."""
    return dict(_font_index())


def split_faces(split: str) -> set[tuple[str, str | None]]:
    """(file name, family inside a collection or None) of every face ``split`` uses."""
    return {entry for splits in FACES_BY_LANGUAGE.values() for entry in splits.get(split, ())}


def split_font_files(split: str) -> set[str]:
    """Font file names any language uses in ``split`` (the lite training excludes dev/test ones)."""
    return {name for splits in FACES_BY_LANGUAGE.values() for name, _ in splits.get(split, ())}


def load_face(file_name: str, family: str | None = None) -> FontFace:
    """The face of ``file_name`` (whose family is ``family`` inside a collection)."""
    path = find_font_file(file_name)
    families = _families(str(path))
    if family is None:
        return FontFace(str(path), 0, families[0])
    if family not in families:
        raise FontMissing(f"{path} has no face {family!r} (it has {', '.join(families)}); "
                          f"reinstall {debian_package_for(file_name)}")
    return FontFace(str(path), families.index(family), family)


def _search_dirs() -> list[str]:
    extra = [d for d in os.environ.get("CLEAR_RAY_FONT_DIRS", "").split(os.pathsep) if d]
    return extra + [os.path.expanduser(d) for d in FONT_DIRS]


@functools.lru_cache(maxsize=None)
def _font_index_for(dirs: tuple[str, ...]) -> dict[str, Path]:
    index: dict[str, Path] = {}
    for directory in dirs:
        for root, _, files in os.walk(directory):
            for name in sorted(files):
                if name.lower().endswith((".ttf", ".otf", ".ttc")):
                    index.setdefault(name, Path(root) / name)
    return index


def _font_index() -> dict[str, Path]:
    return _font_index_for(tuple(_search_dirs()))


@functools.lru_cache(maxsize=None)
def _families(path: str) -> list[str]:
    """Family name of each face in a font file (one entry for a .ttf)."""
    from fontTools.ttLib import TTCollection, TTFont

    if path.lower().endswith(".ttc"):
        fonts = TTCollection(path, lazy=True).fonts
    else:
        fonts = [TTFont(path, lazy=True)]
    return [str(font["name"].getDebugName(1)) for font in fonts]


@functools.lru_cache(maxsize=None)
def _codepoints(path: str, index: int) -> frozenset[int]:
    from fontTools.ttLib import TTFont

    font = TTFont(path, fontNumber=index if path.lower().endswith(".ttc") else -1, lazy=True)
    return frozenset(font.getBestCmap())


@functools.lru_cache(maxsize=64)
def _pil_font(path: str, index: int, size_px: int):
    from PIL import ImageFont, features

    if not features.check("raqm"):
        raise RuntimeError("Pillow was built without Raqm (libraqm): complex scripts and "
                           "right-to-left text would render wrongly; install libraqm")
    return ImageFont.truetype(path, size=size_px, index=index, layout_engine=ImageFont.Layout.RAQM)
