"""Real multilingual subtitle text, read at run time from installed packages.

Sources (nothing is copied into this repository):

- Chinese: Debian ``fortunes-zh`` (/usr/share/games/fortunes: Tang and Song poems, and
  prose), GPL-3+; its lines are short clauses, like real subtitle lines.
- Every other language: the translation catalogues (``.po``) inside the installed Django
  package (BSD-3-Clause, like Django itself): thousands of real, human-translated
  sentences per language. English uses the catalogues' source strings (``msgid``).

Each language's pool is cut in three by a hash of the text itself, so ``train``, ``dev``
and ``test`` never share a line, whatever order the files list them in: a third of the
lines are ``train``; the rest keep the benchmark's earlier dev/test cut.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

FORTUNE_DIRS = ("/usr/share/games/fortunes", "/usr/share/fortunes", "/usr/games/fortunes")
# Poems only: the "chinese" file is mostly Debian tips full of commands and paths.
FORTUNE_FILES_ZH = ("tang300", "song100")
SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class Language:
    code: str  # our key, also the BCP 47 tag given to the shaper
    name: str
    rtl: bool
    cjk: bool  # lines break between any two characters (no spaces between words)
    source: str  # where its text comes from, with the licence


_DJANGO = "Django translation catalogues (BSD-3-Clause)"
LANGUAGES: dict[str, Language] = {
    "zh": Language("zh", "Chinese (Simplified)", False, True, "Debian fortunes-zh (GPL-3+)"),
    "ja": Language("ja", "Japanese", False, True, _DJANGO),
    "ko": Language("ko", "Korean", False, True, _DJANGO),
    "ar": Language("ar", "Arabic", True, False, _DJANGO),
    "ru": Language("ru", "Russian", False, False, _DJANGO),
    "en": Language("en", "English", False, False, _DJANGO + " source strings"),
    "fr": Language("fr", "French", False, False, _DJANGO),
    "de": Language("de", "German", False, False, _DJANGO),
}

# Subtitle-sized lines only: length bounds in characters.
_MIN_CHARS = {True: 4, False: 8}
_MAX_CHARS = {True: 22, False: 64}
# Markup, placeholders and paths are not subtitle text.
_REJECT = re.compile(r"[%{}<>_/\\|=@#*\[\]\"$]|https?:|\.\.\.|\n|\t")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class TextSourceMissing(FileNotFoundError):
    """A text source is not installed; the message says how to install it."""


def text_pool(language: str, split: str) -> list[str]:
    """Subtitle-sized lines of real text in ``language`` for split ``split``.

    Deterministic (sorted) and disjoint between 'train', 'dev' and 'test'.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return list(_split_pool(language, split))


@functools.lru_cache(maxsize=None)
def _split_pool(language: str, split: str) -> tuple[str, ...]:
    # Cached: a pairs worker draws a pool for every window.
    return tuple(line for line in _all_lines(language) if split_of_text(language, line) == split)


def split_of_text(language: str, line: str) -> str:
    digest = hashlib.sha256(f"{language}\0{line}".encode()).digest()
    if digest[1] % 3 == 0:
        return "train"
    return ("dev", "test")[digest[0] & 1]


@functools.lru_cache(maxsize=None)
def _all_lines(language: str) -> tuple[str, ...]:
    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; known: {', '.join(LANGUAGES)}")
    info = LANGUAGES[language]
    raw = _fortune_lines_zh() if language == "zh" else _django_lines(language)
    keep = {line for line in (" ".join(r.split()) for r in raw) if _is_subtitle_line(line, info.cjk)}
    return tuple(sorted(keep))


def _is_subtitle_line(line: str, cjk: bool) -> bool:
    if not _MIN_CHARS[cjk] <= len(line) <= _MAX_CHARS[cjk] or _REJECT.search(line):
        return False
    letters = sum(ch.isalpha() for ch in line)
    return letters >= 0.6 * len(line.replace(" ", ""))


def _fortune_lines_zh() -> list[str]:
    directory = next((Path(d) for d in FORTUNE_DIRS if (Path(d) / "tang300").is_file()), None)
    if directory is None:
        raise TextSourceMissing("Chinese text needs Debian's fortunes-zh (apt-get install fortunes-zh); "
                               f"looked in {', '.join(FORTUNE_DIRS)}")
    lines: list[str] = []
    for name in FORTUNE_FILES_ZH:
        path = directory / name
        if not path.is_file():
            continue
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = _ANSI.sub("", raw).strip()
            # Titles 《...》 and "作者：" attributions are not dialogue.
            if not line or line == "%" or line.startswith(("《", "--")) or "作者" in line:
                continue
            # A long line holds several sentences: a subtitle shows one at a time.
            lines += [s for s in re.split(r"(?<=[。！？；])", line) if s and s[0] not in "，。！？；：、"]
    return lines


def django_locale_root() -> Path:
    spec = importlib.util.find_spec("django")
    if spec is None or not spec.submodule_search_locations:
        raise TextSourceMissing("multilingual subtitle text comes from Django's translation catalogues: "
                                "pip install django")
    return Path(list(spec.submodule_search_locations)[0])


def _django_lines(language: str) -> list[str]:
    root = django_locale_root()
    locale = "en" if language == "en" else language
    files = sorted(root.glob(f"conf/locale/{locale}/LC_MESSAGES/*.po"))
    files += sorted(root.glob(f"contrib/*/locale/{locale}/LC_MESSAGES/*.po"))
    if language == "en":
        # Django's English catalogues are the source strings themselves: read the msgids
        # of a translated catalogue instead (English is what translators translate from).
        files = sorted(root.glob("conf/locale/fr/LC_MESSAGES/*.po"))
        files += sorted(root.glob("contrib/*/locale/fr/LC_MESSAGES/*.po"))
    if not files:
        raise TextSourceMissing(f"the installed Django has no catalogues for {language!r} under {root}")
    lines: list[str] = []
    for path in files:
        for msgid, msgstr in parse_po(path.read_text(encoding="utf-8")):
            lines.append(msgid if language == "en" else msgstr)
    return lines


def parse_po(text: str) -> list[tuple[str, str]]:
    """(msgid, msgstr) pairs of a gettext catalogue, skipping the header, fuzzy,
    untranslated and plural entries."""
    entries: list[tuple[str, str]] = []
    fields: dict[str, str] = {}
    current: str | None = None
    fuzzy = False

    def flush() -> None:
        nonlocal fields, current, fuzzy
        msgid, msgstr = fields.get("msgid", ""), fields.get("msgstr", "")
        if msgid and msgstr and not fuzzy and "msgid_plural" not in fields:
            entries.append((msgid, msgstr))
        fields, current, fuzzy = {}, None, False

    for raw in text.splitlines() + [""]:
        line = raw.strip()
        if not line:
            flush()
        elif line.startswith("#,") and "fuzzy" in line:
            fuzzy = True
        elif line.startswith("#"):
            continue
        elif line.startswith('"') and current is not None:
            fields[current] += _unquote(line)
        else:
            key, _, rest = line.partition(" ")
            if key in ("msgid", "msgstr", "msgid_plural", "msgctxt") or key.startswith("msgstr["):
                if key == "msgid" and "msgid" in fields:
                    flush()
                current = key
                fields[key] = _unquote(rest)
    return entries


def _unquote(quoted: str) -> str:
    body = quoted.strip()
    if len(body) < 2 or body[0] != '"' or body[-1] != '"':
        return ""
    return re.sub(r'\\(.)', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body[1:-1])
