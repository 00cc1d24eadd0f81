"""Render one subtitle cue to a soft RGBA layer whose alpha is exactly what is composited.

Why PIL + Raqm rather than ffmpeg's libass ``subtitles`` filter: libass burns the text
straight into the frame and never hands back its coverage, so the true alpha would have
to be recovered by differencing against the clean frame, which loses it wherever text and
background have similar colours and makes the "exact mask" a guess. PIL draws each part
(fill, outline stroke, shadow, box) as an 8-bit anti-aliased coverage map with FreeType,
and Raqm (HarfBuzz + FriBidi) shapes Arabic joining forms, right-to-left order and CJK
like libass does. We combine the parts ourselves with the Porter-Duff "over" operator in
8-bit sRGB (what libass and most burners do: no linearisation), so the alpha we store is
bit-for-bit the alpha we blend with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clear_ray.synth.fonts import FontFace
from clear_ray.synth.styles import SubtitleStyle
from clear_ray.synth.texts import LANGUAGES

SHADOW_RGB = (0.0, 0.0, 0.0)
BOX_RGB = (8.0, 8.0, 8.0)
MAX_WIDTH_FRAC = 0.9  # text block width / frame width
_CJK_BREAK_AFTER = set("，。、！？；：）」』 ,.!?;:)")


class LayoutError(ValueError):
    """The text cannot be laid out in the frame with this style (too long, too big)."""


@dataclass(frozen=True)
class TextLayer:
    """A rendered cue: a crop of the frame at (x0, y0) with straight colour and coverage."""

    x0: int
    y0: int
    color_hwc_f32: np.ndarray  # (h, w, 3) straight (not premultiplied) colour, 0..255
    alpha_hw_u8: np.ndarray  # (h, w) coverage 0..255: the compositor uses exactly alpha/255
    lines: tuple[str, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return self.alpha_hw_u8.shape


def wrap_text(text: str, face: FontFace, font_px: int, max_width_px: float, max_lines: int,
              language: str) -> list[str]:
    """Break ``text`` into at most ``max_lines`` lines no wider than ``max_width_px``.

    Latin/Cyrillic/Arabic break at spaces, CJK between any two characters. A long text on a
    two-line style is split into balanced lines, as subtitle editors do.
    """
    info = LANGUAGES[language]
    font = face.pil_font(font_px)
    direction = "rtl" if info.rtl else "ltr"

    def width(line: str) -> float:
        return font.getlength(line, direction=direction, language=language)

    units = list(text) if info.cjk else text.split(" ")
    joiner = "" if info.cjk else " "
    if width(text) <= max_width_px and (max_lines == 1 or width(text) <= 0.55 * max_width_px):
        return [text]
    if max_lines < 2 or len(units) < 2:
        raise LayoutError(f"text too wide for one line at {font_px}px: {text!r}")
    best: tuple[bool, float, list[str]] | None = None
    for cut in range(1, len(units)):
        pair = [joiner.join(units[:cut]).strip(), joiner.join(units[cut:]).strip()]
        if not all(pair):
            continue
        widest = max(width(line) for line in pair)
        # CJK: prefer breaking after punctuation or at a space, as subtitle editors do.
        natural = not info.cjk or units[cut - 1] in _CJK_BREAK_AFTER or units[cut] == " "
        rank = (not natural, widest)
        if widest <= max_width_px and (best is None or rank < best[:2]):
            best = (*rank, pair)
    if best is None:
        raise LayoutError(f"text too wide for two lines at {font_px}px: {text!r}")
    return best[2]


def render_cue(lines: list[str], style: SubtitleStyle, face: FontFace, frame_width: int,
               frame_height: int, language: str) -> TextLayer:
    """Draw ``lines`` in ``style`` and return the layer (a crop of the frame)."""
    from PIL import Image, ImageDraw, ImageFilter

    info = LANGUAGES[language]
    size = (frame_width, frame_height)
    font_px = style.font_px(frame_height)
    font = face.pil_font(font_px)
    stroke_px = int(round(style.outline_frac * font_px))
    if style.outline_frac > 0:
        stroke_px = max(1, stroke_px)
    ascent, descent = font.getmetrics()
    pitch = style.line_spacing * font_px
    if style.position == "bottom":
        last_baseline = frame_height * (1 - style.margin_frac) - descent
        baselines = [last_baseline - (len(lines) - 1 - i) * pitch for i in range(len(lines))]
    else:
        baselines = [frame_height * style.margin_frac + ascent + i * pitch for i in range(len(lines))]
    centre_x = frame_width / 2
    text_options = dict(anchor="ms", direction="rtl" if info.rtl else "ltr", language=language)

    def coverage(stroke: int, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        canvas = Image.new("L", size, 0)
        draw = ImageDraw.Draw(canvas)
        for line, baseline in zip(lines, baselines):
            draw.text((centre_x + dx, baseline + dy), line, font=font, fill=255,
                      stroke_width=stroke, stroke_fill=255, **text_options)
        return np.asarray(canvas, dtype=np.float32) / 255.0

    # (colour, coverage) from bottom to top.
    parts: list[tuple[tuple[float, float, float], np.ndarray]] = []
    if style.box_opacity > 0:
        pad = max(1, int(round(style.box_padding_frac * font_px)))
        box = Image.new("L", size, 0)
        draw = ImageDraw.Draw(box)
        for line, baseline in zip(lines, baselines):
            left, top, right, bottom = font.getbbox(line, stroke_width=stroke_px, **text_options)
            draw.rectangle([round(centre_x + left - pad), round(baseline + min(top, -ascent) - pad),
                            round(centre_x + right + pad), round(baseline + max(bottom, descent) + pad)],
                           fill=255)
        parts.append((BOX_RGB, np.asarray(box, dtype=np.float32) / 255.0 * style.box_opacity))
    if style.shadow_offset_frac > 0:
        offset = max(1, int(round(style.shadow_offset_frac * font_px)))
        shadow = coverage(stroke_px, offset, offset)
        blur = style.shadow_blur_frac * font_px
        if blur >= 0.5:
            image = Image.fromarray(np.rint(shadow * 255).astype(np.uint8), "L")
            shadow = np.asarray(image.filter(ImageFilter.GaussianBlur(blur)), dtype=np.float32) / 255.0
        parts.append((SHADOW_RGB, shadow * style.shadow_opacity))
    if stroke_px > 0:
        parts.append((tuple(float(c) for c in style.outline_rgb), coverage(stroke_px)))
    parts.append((tuple(float(c) for c in style.fill_rgb), coverage(0)))

    premultiplied_hwc = np.zeros((frame_height, frame_width, 3), np.float32)
    alpha_hw = np.zeros((frame_height, frame_width), np.float32)
    for colour, part_alpha in parts:  # Porter-Duff "over", premultiplied
        premultiplied_hwc = np.asarray(colour, np.float32) * part_alpha[..., None] \
            + premultiplied_hwc * (1 - part_alpha[..., None])
        alpha_hw = part_alpha + alpha_hw * (1 - part_alpha)
    alpha_u8 = np.rint(alpha_hw * 255).astype(np.uint8)
    ys, xs = np.nonzero(alpha_u8)
    if ys.size == 0:
        raise LayoutError(f"nothing drawn for {lines!r}")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if y0 == 0 or x0 == 0 or y1 == frame_height or x1 == frame_width:
        raise LayoutError(f"text touches the frame edge at {font_px}px: {lines!r}")
    crop = (slice(y0, y1), slice(x0, x1))
    color_hwc = premultiplied_hwc[crop] / np.maximum(alpha_hw[crop], 1e-6)[..., None]
    return TextLayer(int(x0), int(y0), np.clip(color_hwc, 0, 255).astype(np.float32),
                     alpha_u8[crop].copy(), tuple(lines))


def fade_alpha(layer: TextLayer, opacity: float) -> np.ndarray:
    """The layer's coverage scaled by ``opacity`` (fades), rounded to the 8-bit alpha that
    both the compositor and the stored ground truth use."""
    if opacity >= 1.0:
        return layer.alpha_hw_u8
    return np.rint(layer.alpha_hw_u8.astype(np.float32) * max(opacity, 0.0)).astype(np.uint8)


def composite_layer(frame_hwc_u8: np.ndarray, alpha_hw_u8_full: np.ndarray, layer: TextLayer,
                    opacity: float = 1.0) -> None:
    """Blend ``layer`` over ``frame_hwc_u8`` in place (sRGB alpha-over) and accumulate the
    frame's total alpha into ``alpha_hw_u8_full`` (cues may overlap during cross-fades)."""
    alpha_u8 = fade_alpha(layer, opacity)
    h, w = alpha_u8.shape
    crop = (slice(layer.y0, layer.y0 + h), slice(layer.x0, layer.x0 + w))
    a = alpha_u8.astype(np.float32)[..., None] / 255.0
    under = frame_hwc_u8[crop].astype(np.float32)
    frame_hwc_u8[crop] = np.clip(np.rint(layer.color_hwc_f32 * a + under * (1 - a)), 0, 255).astype(np.uint8)
    previous = alpha_hw_u8_full[crop].astype(np.float32) / 255.0
    total = a[..., 0] + previous * (1 - a[..., 0])
    alpha_hw_u8_full[crop] = np.rint(total * 255).astype(np.uint8)
