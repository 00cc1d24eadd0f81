"""Typed media errors. Every one carries a one-line ``reason``; ``str(error)`` is one line
too (``"<uri>: <reason>"``), so a manifest row or a CLI message never spans lines."""

from __future__ import annotations


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class MediaError(Exception):
    """Base class: something about a media file (or its storage) that we cannot process."""

    def __init__(self, reason: str, uri: str | None = None):
        self.reason = _one_line(reason)
        self.uri = uri
        super().__init__(f"{uri}: {self.reason}" if uri else self.reason)


class MissingFile(MediaError):
    """A local path that does not exist (or is not a regular file)."""


class EmptyFile(MediaError):
    """A file of zero bytes."""


class NotAVideo(MediaError):
    """Bytes that no demuxer recognises (a text file named .mp4, ...)."""


class NoVideoStream(MediaError):
    """A valid media file without a video stream (audio only, subtitles only)."""


class CorruptStream(MediaError):
    """Truncated or undecodable data, including "file ends after M of N frames"."""


class UnsupportedFormat(MediaError):
    """A format we refuse rather than mangle: deeper than 10 bits, odd rotations."""


class FrameTooLarge(MediaError):
    """Declared frame size above ``max_pixels`` (decompression-bomb guard, checked from the
    header before anything is decoded)."""


class RemoteReadError(MediaError):
    """fsspec / object-store failure: missing key, permission, connection."""
