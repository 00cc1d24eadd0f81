"""The renderer: exact alpha, RTL order, every style part inside the alpha."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from clear_ray.synth import fonts, render
from clear_ray.synth.styles import SubtitleStyle, sample_style, style_keys

W, H = 320, 180


def make_style(face: fonts.FontFace, **changes) -> SubtitleStyle:
    base = SubtitleStyle(
        key="white/outline/large", font_file=face.file_name, font_family=face.family, font_index=face.index,
        size_frac=0.15, fill_rgb=(255, 255, 255), outline_rgb=(0, 0, 0), outline_frac=0.08,
        shadow_offset_frac=0.0, shadow_opacity=0.0, shadow_blur_frac=0.0, box_opacity=0.0,
        box_padding_frac=0.0, position="bottom", margin_frac=0.08, line_spacing=1.2, max_lines=2,
        fade_in_s=0.0, fade_out_s=0.0)
    return dataclasses.replace(base, **changes)


def draw_with_pil(face, style, text, language) -> np.ndarray:
    """Independent reference: PIL draws the same text, stroke and all, straight into an RGB image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (W, H), (0, 0, 0))
    font = face.pil_font(style.font_px(H))
    stroke = max(1, round(style.outline_frac * style.font_px(H)))
    _, descent = font.getmetrics()
    ImageDraw.Draw(image).text((W / 2, H * (1 - style.margin_frac) - descent), text, font=font,
                               fill=(255, 255, 255), stroke_width=stroke, stroke_fill=(255, 255, 255),
                               anchor="ms", direction="rtl" if language == "ar" else "ltr", language=language)
    return np.asarray(image).max(axis=-1)


@pytest.mark.parametrize("language,text", [("en", "Hello, world"), ("zh", "兰叶春葳蕤"), ("ar", "مرحبا بالعالم")])
def test_alpha_covers_exactly_the_glyph_and_outline_pixels(language, text):
    face = fonts.faces_for(language, "dev")[0]
    style = make_style(face)
    layer = render.render_cue([text], style, face, W, H, language)
    alpha = np.zeros((H, W), np.uint8)
    h, w = layer.shape
    alpha[layer.y0:layer.y0 + h, layer.x0:layer.x0 + w] = layer.alpha_hw_u8
    reference = draw_with_pil(face, style, text, language)
    np.testing.assert_array_equal(alpha > 0, reference > 0)
    assert (alpha == 255).sum() > 0.3 * (alpha > 0).sum()  # solid strokes, soft edges


def test_composite_changes_only_masked_pixels_and_uses_the_stored_alpha():
    face = fonts.faces_for("en", "dev")[0]
    style = make_style(face, shadow_offset_frac=0.08, shadow_opacity=0.7, shadow_blur_frac=0.03,
                       fill_rgb=(255, 230, 0))
    layer = render.render_cue(["Test line"], style, face, W, H, "en")
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    for opacity in (1.0, 0.4):
        out, alpha = frame.copy(), np.zeros((H, W), np.uint8)
        render.composite_layer(out, alpha, layer, opacity)
        assert np.array_equal(out[alpha == 0], frame[alpha == 0])
        a = alpha.astype(np.float64)[..., None] / 255
        colour = np.zeros((H, W, 3))
        h, w = layer.shape
        colour[layer.y0:layer.y0 + h, layer.x0:layer.x0 + w] = layer.color_hwc_f32
        expected = np.rint(colour * a + frame * (1 - a))
        assert np.abs(out - expected).max() <= 1  # float32 vs float64 rounding only
        assert np.array_equal(alpha[layer.y0:layer.y0 + h, layer.x0:layer.x0 + w],
                              render.fade_alpha(layer, opacity))
    solid = layer.alpha_hw_u8 == 255
    assert solid.any() and np.allclose(layer.color_hwc_f32[solid].max(axis=0), (255, 230, 0), atol=1)


def test_box_and_shadow_are_part_of_the_alpha():
    face = fonts.faces_for("ru", "test")[0]
    plain = render.render_cue(["Привет"], make_style(face, outline_frac=0.0), face, W, H, "ru")
    boxed = render.render_cue(["Привет"], make_style(face, outline_frac=0.0, box_opacity=0.6,
                                                     box_padding_frac=0.2), face, W, H, "ru")
    shadowed = render.render_cue(["Привет"], make_style(face, outline_frac=0.0, shadow_offset_frac=0.1,
                                                        shadow_opacity=0.8), face, W, H, "ru")
    assert (boxed.alpha_hw_u8 > 0).sum() > 2 * (plain.alpha_hw_u8 > 0).sum()
    assert np.unique(boxed.alpha_hw_u8).tolist().count(round(0.6 * 255)) == 1  # the bare box
    assert (shadowed.alpha_hw_u8 > 0).sum() > (plain.alpha_hw_u8 > 0).sum()


def test_arabic_renders_right_to_left_and_joined():
    import cv2

    face = fonts.faces_for("ar", "dev")[0]
    style = make_style(face, outline_frac=0.0)
    first, second = "سلام", "عالم"  # logical order: first word, then second

    def rendered(text: str) -> np.ndarray:
        layer = render.render_cue([text], style, face, W, H, "ar")
        return layer.alpha_hw_u8

    both = rendered(f"{first} {second}")
    x = {}
    for word in (first, second):
        template = rendered(word)
        pad = np.zeros((both.shape[0] + 2, max(both.shape[1], template.shape[1]) + 2), np.uint8)
        pad[1:1 + both.shape[0], 1:1 + both.shape[1]] = both
        scores = cv2.matchTemplate(pad.astype(np.float32), template.astype(np.float32), cv2.TM_CCOEFF_NORMED)
        assert scores.max() > 0.95
        x[word] = np.unravel_index(scores.argmax(), scores.shape)[1]
    assert x[first] > x[second]  # the first word sits on the right
    # Joined letters: the shaped word is narrower than its isolated letters side by side.
    isolated = sum(rendered(letter).shape[1] for letter in first)
    assert rendered(first).shape[1] < isolated


def test_wrap_text_breaks_long_text_into_two_lines_that_fit():
    face = fonts.faces_for("en", "dev")[0]
    text = "Designates whether this user can log into this admin site"
    lines = render.wrap_text(text, face, 24, 420, 2, "en")
    assert len(lines) == 2 and " ".join(lines) == text
    font = face.pil_font(24)
    assert max(font.getlength(line) for line in lines) <= 420
    with pytest.raises(render.LayoutError):
        render.wrap_text(text, face, 24, 420, 1, "en")
    cjk = fonts.faces_for("zh", "dev")[0]
    assert render.wrap_text("兰叶春葳蕤，桂华秋皎洁。", cjk, 20, 160, 2, "zh") == ["兰叶春葳蕤，", "桂华秋皎洁。"]


def test_styles_are_split_disjoint_and_cover_every_choice():
    dev, test = set(style_keys("dev")), set(style_keys("test"))
    assert dev and test and not dev & test
    for part in range(3):
        assert {k.split("/")[part] for k in dev} == {k.split("/")[part] for k in test}
    rng = np.random.default_rng(0)
    for split, keys in (("dev", dev), ("test", test)):
        for _ in range(20):
            style = sample_style(rng, "ko", split)
            assert style.key in keys
            assert style.font_file in {f.file_name for f in fonts.faces_for("ko", split)}
            assert SubtitleStyle.from_json(style.to_json()) == style
