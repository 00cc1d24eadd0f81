"""Real fonts with real glyphs (no tofu) and real multilingual text, split-disjoint."""

from __future__ import annotations

import unicodedata

import numpy as np
import pytest

from clear_ray.synth import fonts, texts


def ink(face: fonts.FontFace, text: str, size_px: int = 40) -> np.ndarray:
    """The rendered coverage of ``text`` (independent of our renderer: PIL's getmask)."""
    font = face.pil_font(size_px)
    return np.asarray(font.getmask(text, mode="L")).reshape(font.getmask(text, mode="L").size[::-1])


@pytest.mark.parametrize("language", sorted(fonts.FACES_BY_LANGUAGE))
def test_every_language_has_disjoint_fonts_per_split(language):
    dev = fonts.faces_for(language, "dev")
    test = fonts.faces_for(language, "test")
    assert dev and test
    assert not {f.file_name for f in dev} & {f.file_name for f in test}
    assert not {f.family for f in dev} & {f.family for f in test}


@pytest.mark.parametrize("language,region", [("zh", "SC"), ("ja", "JP"), ("ko", "KR")])
def test_cjk_faces_are_picked_by_family_inside_the_collection(language, region):
    for face in fonts.faces_for(language, "dev") + fonts.faces_for(language, "test"):
        assert face.file_name.endswith(".ttc")
        assert face.family.endswith(f"CJK {region}")
        assert face.index == fonts._families(face.path).index(face.family)


def test_a_missing_font_names_its_debian_package():
    with pytest.raises(fonts.FontMissing, match="apt-get install fonts-noto-cjk"):
        fonts.find_font_file("NotoSansCJK-Nonexistent.ttc")
    with pytest.raises(fonts.FontMissing, match="fonts-noto-core"):
        fonts.find_font_file("NotoSansKlingon-Regular.ttf")


@pytest.mark.parametrize("language", ["zh", "ja", "ko"])
def test_cjk_text_renders_real_glyphs_not_tofu(language):
    """Coverage says every character has a glyph, and rendering agrees: no character of
    real sampled text draws the font's .notdef box."""
    rng = np.random.default_rng(0)
    for split in texts.SPLITS:
        pool = texts.text_pool(language, split)
        for face in fonts.faces_for(language, split):
            notdef = ink(face, "\U0010FFFD")  # a private-use code point no font maps
            assert notdef.any(), "the .notdef glyph of a Noto face is a visible box"
            lines = [pool[i] for i in rng.choice(len(pool), 5, replace=False)]
            for line in lines:
                assert face.covers(line), (face.family, face.missing_chars(line))
                for char in set(line) - {" "}:
                    if unicodedata.category(char).startswith("L"):
                        glyph = ink(face, char)
                        assert glyph.shape != notdef.shape or not np.array_equal(glyph, notdef), (face.family, char)


def test_coverage_detects_tofu():
    """The negative control: a CJK face has no Devanagari, and indeed draws .notdef for it."""
    face = fonts.faces_for("zh", "dev")[0]
    assert face.missing_chars("中文 क") == ["क"]
    assert np.array_equal(ink(face, "क"), ink(face, "\U0010FFFD"))
    kufi = fonts.load_face("NotoKufiArabic-Regular.ttf")
    assert kufi.missing_chars("نص tabs") == ["t", "a", "b", "s"]


@pytest.mark.parametrize("language", sorted(texts.LANGUAGES))
def test_text_pools_are_real_subtitle_lines_and_split_disjoint(language):
    dev, test = texts.text_pool(language, "dev"), texts.text_pool(language, "test")
    assert len(dev) >= 100 and len(test) >= 100
    assert not set(dev) & set(test)
    assert texts.text_pool(language, "dev") == dev  # deterministic
    script = {"zh": "CJK UNIFIED", "ja": "KATAKANA", "ko": "HANGUL", "ar": "ARABIC", "ru": "CYRILLIC"}
    if language in script:
        share = np.mean([any(script[language] in unicodedata.name(c, "") for c in line) for line in dev])
        assert share > 0.3, share
    for line in dev[:50]:
        assert "%" not in line and "{" not in line and "\n" not in line


def test_po_parser_handles_continuations_fuzzy_and_plurals():
    po = '\n'.join([
        'msgid ""', 'msgstr ""', '"Language: fr\\n"', '',
        '#: a.py:1', 'msgid "Hello"', 'msgstr "Bonjour"', '',
        'msgid ""', '"Two "', '"parts"', 'msgstr ""', '"Deux "', '"parties \\"ok\\""', '',
        '#, fuzzy', 'msgid "Unsure"', 'msgstr "Incertain"', '',
        'msgid "One item"', 'msgid_plural "%d items"', 'msgstr[0] "Un"', 'msgstr[1] "Des"', '',
        'msgid "Untranslated"', 'msgstr ""',
    ])
    assert texts.parse_po(po) == [("Hello", "Bonjour"), ("Two parts", 'Deux parties "ok"')]


def test_unknown_language_and_split_are_clear_errors():
    with pytest.raises(ValueError, match="unknown language"):
        texts.text_pool("xx", "dev")
    with pytest.raises(ValueError, match="split must be"):
        texts.text_pool("en", "validation")
