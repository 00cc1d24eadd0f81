"""Random text layers for training the lite segmenter: many scripts, fonts and styles.

Fonts come from ``clear_ray.synth.fonts``: every installed Noto/DejaVu face except the
benchmark's ``dev`` and ``test`` faces (and designs near the test ones), so no training
run sees a benchmark typeface. The text is random letters drawn from each font's own
character map, never real sentences, so the segmenter learns "subtitle-like strokes"
rather than particular words or typefaces (and covers scripts beyond the eight the synth
texts have). A layer is a list of (alpha_hw_f32, colour_rgb) drawn bottom to top: box,
shadow, outline, fill; the union coverage is the training target.

The shipped weights were trained before the synth split, when only the test faces were
held out (the dev faces were seen); a retrain with this module holds out both.
"""

from __future__ import annotations

import functools
import os
import unicodedata
from dataclasses import dataclass

import numpy as np

# Families held out because the benchmark's test split uses them or a near-identical design.
HELD_OUT_PREFIXES = ("NotoSerif-", "NotoSerifDisplay", "DejaVuSans", "NotoNaskhArabic",
                     "NotoKufiArabic", "NotoSerifCJK")
LATIN_FONTS = ("NotoSans-", "NotoSansDisplay", "DejaVuSerif")
# Fonts whose glyphs are not running text (symbols, music, numerals only).
SKIP_SUBSTRINGS = ("Math", "Music", "Symbols", "Numbers", "SignWriting", "Mono", "ExtraLight",
                   "Hieroglyphs", "Cuneiform", "Duployan")


@dataclass(frozen=True)
class TrainFont:
    path: str
    index: int
    letters: str  # letters this face draws, from its own script
    spaced: bool  # words separated by spaces (False for CJK-like scripts)


def benchmark_faces() -> tuple[set[str], set[tuple[str, str]]]:
    """(single-face font files, (collection file, family) faces) of the dev and test splits."""
    from clear_ray.synth.fonts import split_faces

    faces = split_faces("dev") | split_faces("test")
    return ({name for name, family in faces if family is None},
            {(name, family) for name, family in faces if family is not None})


def _candidate_files() -> list[str]:
    from clear_ray.synth.fonts import installed_font_files

    found = installed_font_files()
    names = [n for n in found if n.startswith(("Noto", "DejaVu")) and n.endswith(".ttf")]
    names += [n for n in found if n.startswith("NotoSansCJK-") and n.endswith(".ttc")]
    return [str(found[n]) for n in sorted(names)]


@functools.lru_cache(maxsize=1)
def training_fonts() -> tuple[TrainFont, ...]:
    from fontTools.ttLib import TTCollection, TTFont

    held_out_files, held_out_faces = benchmark_faces()
    fonts: list[TrainFont] = []
    for path in _candidate_files():
        name = os.path.basename(path)
        if name in held_out_files or name.startswith(HELD_OUT_PREFIXES) or any(s in name for s in SKIP_SUBSTRINGS):
            continue
        if path.endswith(".ttc"):
            faces = [(i, face) for i, face in enumerate(TTCollection(path, lazy=True).fonts)
                     if (name, str(face["name"].getDebugName(1))) not in held_out_faces]
        else:
            faces = [(0, TTFont(path, lazy=True))]
        latin = name.startswith(LATIN_FONTS)
        for index, face in faces:
            cmap = face.getBestCmap() or {}
            letters = [chr(c) for c in cmap if _is_letter(chr(c)) and (latin or c >= 0x250)]
            if latin:
                letters = [ch for ch in letters if ord(ch) < 0x530]
            if len(letters) < 20:
                continue
            wide = sum(unicodedata.east_asian_width(ch) == "W" for ch in letters) > len(letters) // 2
            if wide:  # the commonest ideographs/syllables read most like real captions
                letters = letters[:6000]
            fonts.append(TrainFont(path, index, "".join(letters), spaced=not wide))
    if not fonts:
        raise RuntimeError("no training fonts found; install fonts-noto-core and fonts-noto-cjk")
    return tuple(fonts)


# Common subtitle scripts are drawn more often than the long tail of rare ones.
FONT_GROUP_WEIGHTS = (("latin", 0.35), ("wide", 0.22), ("arabic", 0.13), ("other", 0.30))
ARABIC_LIKE = ("Arabic", "Nastaliq", "Syriac", "Thaana", "NKo", "Hebrew", "Mandaic")


def _group(font: TrainFont) -> str:
    name = os.path.basename(font.path)
    if name.startswith(LATIN_FONTS):
        return "latin"
    if not font.spaced:
        return "wide"
    return "arabic" if any(s in name for s in ARABIC_LIKE) else "other"


def pick_font(rng: np.random.Generator) -> TrainFont:
    fonts = training_fonts()
    groups = {name: [f for f in fonts if _group(f) == name] for name, _ in FONT_GROUP_WEIGHTS}
    names = [n for n, _ in FONT_GROUP_WEIGHTS if groups[n]]
    weights = np.array([w for n, w in FONT_GROUP_WEIGHTS if groups[n]])
    chosen = groups[names[int(rng.choice(len(names), p=weights / weights.sum()))]]
    return chosen[int(rng.integers(0, len(chosen)))]


# Latin-font faces also carry Greek and Cyrillic: one alphabet per caption line.
ALPHABETS = ((0x41, 0x7B, 0.45), (0x41, 0x250, 0.2), (0x400, 0x530, 0.25), (0x370, 0x400, 0.1))


def _is_letter(char: str) -> bool:
    return unicodedata.category(char) in ("Lu", "Ll", "Lo", "Lm")


@functools.lru_cache(maxsize=256)
def _pil_font(path: str, index: int, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size=size, index=index, layout_engine=ImageFont.Layout.RAQM)


def random_line(rng: np.random.Generator, font: TrainFont) -> str:
    pool = font.letters
    if _group(font) == "latin":
        lo, hi, _ = ALPHABETS[int(rng.choice(len(ALPHABETS), p=[a[2] for a in ALPHABETS]))]
        pool = "".join(ch for ch in pool if lo <= ord(ch) < hi) or pool
    n_chars = int(rng.integers(3, 24 if font.spaced else 14))
    chars = [pool[int(i)] for i in rng.integers(0, len(pool), n_chars)]
    if font.spaced:
        out, word_len = [], 0
        for ch in chars:
            out.append(ch)
            word_len += 1
            if word_len >= 2 and rng.random() < 0.25:
                out.append(" ")
                word_len = 0
        if rng.random() < 0.3:
            out.append(rng.choice(list(".,!?")))
        return "".join(out).strip()
    return "".join(chars)


def _random_colour(rng: np.random.Generator, light: bool) -> np.ndarray:
    if light:
        choice = rng.random()
        if choice < 0.45:
            return np.array([255, 255, 255], np.float32) - rng.integers(0, 20)
        if choice < 0.7:
            return np.array([255, 235, 40 + rng.integers(0, 80)], np.float32)
        return rng.integers(120, 256, 3).astype(np.float32)
    return rng.integers(0, 80, 3).astype(np.float32) if rng.random() < 0.4 else np.zeros(3, np.float32)


def render_text_layers(
    rng: np.random.Generator, height: int, width: int, text_height: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """One random caption (1-2 lines, random style and place) on a (height, width) canvas.
    ``text_height`` is the approximate line height in canvas pixels."""
    import cv2
    from PIL import Image, ImageDraw

    font = pick_font(rng)
    size = int(max(6, round(text_height)))
    pil_font = _pil_font(font.path, font.index, size)
    lines = [random_line(rng, font) for _ in range(1 if rng.random() < 0.6 else 2)]
    outline_px = 0 if rng.random() < 0.3 else int(rng.integers(1, max(2, size // 10) + 2))
    spacing = int(size * rng.uniform(0.15, 0.4))

    probe = ImageDraw.Draw(Image.new("L", (8, 8)))
    boxes = [probe.textbbox((0, 0), line or " ", font=pil_font, stroke_width=outline_px) for line in lines]
    line_w = [b[2] - b[0] for b in boxes]
    line_h = [b[3] - b[1] for b in boxes]
    block_w, block_h = max(line_w), sum(line_h) + spacing * (len(lines) - 1)
    # Anywhere, sometimes cut by the canvas edge (a crop of a wider frame); centred lines.
    x0 = int(rng.uniform(-0.3 * block_w, max(1, width - 0.7 * block_w)))
    y0 = int(rng.uniform(-0.2 * block_h, max(1, height - 0.8 * block_h)))

    fill_mask = Image.new("L", (width, height), 0)
    stroke_mask = Image.new("L", (width, height), 0)
    draw_fill, draw_stroke = ImageDraw.Draw(fill_mask), ImageDraw.Draw(stroke_mask)
    y = y0
    for line, (bx0, by0, _, _), w, h in zip(lines, boxes, line_w, line_h):
        x = x0 + (block_w - w) // 2 - bx0
        draw_fill.text((x, y - by0), line, font=pil_font, fill=255)
        if outline_px:
            draw_stroke.text((x, y - by0), line, font=pil_font, fill=255, stroke_width=outline_px, stroke_fill=255)
        y += h + spacing
    fill = np.asarray(fill_mask, np.float32) / 255.0
    stroke = np.asarray(stroke_mask, np.float32) / 255.0

    layers: list[tuple[np.ndarray, np.ndarray]] = []
    light_fill = rng.random() < 0.8
    fill_colour = _random_colour(rng, light=light_fill)
    edge_colour = _random_colour(rng, light=not light_fill)
    if rng.random() < 0.2:  # semi-transparent box behind the block
        pad = int(size * rng.uniform(0.1, 0.5))
        box = np.zeros((height, width), np.float32)
        box[max(0, y0 - pad): max(0, y0 + block_h + pad), max(0, x0 - pad): max(0, x0 + block_w + pad)] = 1.0
        box_colour = np.zeros(3, np.float32) if rng.random() < 0.7 else rng.integers(0, 256, 3).astype(np.float32)
        layers.append((box * rng.uniform(0.35, 1.0), box_colour))
    if rng.random() < 0.3:  # drop shadow
        dx, dy = (int(v) for v in rng.integers(1, max(2, size // 8) + 2, 2))
        source = stroke if outline_px else fill
        shadow = np.zeros_like(source)
        shadow[dy:, dx:] = source[:height - dy, :width - dx]
        if rng.random() < 0.5:
            shadow = cv2.GaussianBlur(shadow, (0, 0), rng.uniform(0.5, 2.0))
        layers.append((shadow * rng.uniform(0.4, 1.0), np.zeros(3, np.float32)))
    if outline_px:
        layers.append((stroke, edge_colour))
    layers.append((fill, fill_colour))
    return layers


def composite(frame_hwc_f32: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray]], opacity: float) -> np.ndarray:
    """Alpha-over of the layers onto a float RGB frame (sRGB values, as subtitle burners do)."""
    out = frame_hwc_f32
    for alpha, colour in layers:
        a = (alpha * opacity)[..., None]
        out = out * (1.0 - a) + colour * a
    return out


def coverage(layers: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Union alpha of all layers, (h, w) float32 in [0, 1]."""
    keep = np.ones(layers[0][0].shape, np.float32)
    for alpha, _ in layers:
        keep *= 1.0 - alpha
    return 1.0 - keep
