"""Media I/O: the only code that touches PyAV/FFmpeg.

probe / frame_timestamps describe a video; iter_frames / decode return exact frame ranges
as display-oriented RGB; SegmentEncoder writes independently decodable H.264 pieces with
the source's timestamps; mux joins them with every audio/subtitle stream, chapters and
tags of the source; write_comparison renders a before|after video. Local paths and fsspec
URLs (s3://...) alike; failures are MediaError subclasses with one-line reasons.
Importing this package does not import PyAV.
"""

from clear_ray.media.comparison import write_comparison
from clear_ray.media.decode import Frame, decode, iter_frames
from clear_ray.media.encode import SegmentEncoder, output_pix_fmt
from clear_ray.media.errors import (
    CorruptStream,
    EmptyFile,
    FrameTooLarge,
    MediaError,
    MissingFile,
    NotAVideo,
    NoVideoStream,
    RemoteReadError,
    UnsupportedFormat,
)
from clear_ray.media.mux import mux, output_extension, output_extension_for
from clear_ray.media.probe import DEFAULT_MAX_PIXELS, VideoInfo, frame_timestamps, inspect, probe

__all__ = [
    "DEFAULT_MAX_PIXELS", "CorruptStream", "EmptyFile", "Frame", "FrameTooLarge", "MediaError", "MissingFile",
    "NoVideoStream", "NotAVideo", "RemoteReadError", "SegmentEncoder", "UnsupportedFormat", "VideoInfo", "decode",
    "frame_timestamps", "inspect", "iter_frames", "mux", "output_extension", "output_extension_for", "output_pix_fmt",
    "probe", "write_comparison",
]
