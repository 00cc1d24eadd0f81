"""Minimal video read/write for the synth package (bench sets, pair exports).

Reads go through clear_ray.media. Writes pipe raw frames into the ffmpeg binary rather
than PyAV's encoder, because benchmark sets must be byte-reproducible from their seed:
a fresh single-threaded x264 process with bitexact muxing is; libx264 inside a
long-lived process was not. Atomic (temporary name in the same directory, then rename).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class EncoderSettings:
    """One x264 setting for every video of a pair: subtitled and clean must match."""

    crf: int = 14  # near-transparent, so codec noise stays well below text contrast
    preset: str = "medium"
    pix_fmt: str = "yuv420p"  # what real libraries hold (chroma at half resolution)
    # One x264 thread: with frame threads the bytes changed now and then under heavy load
    # (measured: 1 of 36 files of a 12-clip split); single-threaded x264 has no timing-dependent path.
    threads: int = 1


def read_video(path: str | Path) -> tuple[np.ndarray, Fraction]:
    """All frames of the first video stream as (T, H, W, 3) uint8 RGB, and the frame rate.

    Through clear_ray.media, so metrics see frames exactly as the pipeline's removers do
    (same YUV matrix and range, rotation applied)."""
    from clear_ray.media import decode, probe

    info = probe(str(path))
    return decode(str(path), 0, info.num_frames, info=info), info.fps_fraction


def write_video(path: str | Path, frames_thwc_u8: np.ndarray, fps: Fraction | float,
                settings: EncoderSettings = EncoderSettings()) -> Path:
    """Encode frames to an H.264 MP4 at ``path`` (temporary name first, then rename).

    Encoding runs in a fresh ffmpeg process (the imageio-ffmpeg binary) fed raw RGB:
    measured byte-identical run after run, whereas libx264 inside a long-lived process
    (PyAV) gave different bytes for the same frames depending on what the process had
    done before, which would break "same seed, same files".
    """
    import subprocess

    import imageio_ffmpeg

    path = Path(path)
    t, h, w, c = frames_thwc_u8.shape
    if frames_thwc_u8.dtype != np.uint8 or c != 3 or h % 2 or w % 2:
        raise ValueError(f"need uint8 (T,H,W,3) frames with even H and W, got "
                         f"{frames_thwc_u8.dtype} {frames_thwc_u8.shape}")
    rate = Fraction(fps).limit_denominator(1001 * 1000)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial.mp4")
    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-nostdin",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-framerate", str(rate), "-i", "pipe:0",
               "-c:v", "libx264", "-crf", str(settings.crf), "-preset", settings.preset,
               "-pix_fmt", settings.pix_fmt, "-threads", str(settings.threads),
               # BT.709, tagged: readers must not guess the matrix (an untagged SD file is
               # read as BT.601 by players and by clear_ray.media alike).
               "-vf", "scale=out_color_matrix=bt709:out_range=tv:flags=accurate_rnd+full_chroma_int",
               "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
               # no encoder version strings or creation times: the bytes depend on the frames only
               "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1",
               "-f", "mp4", str(temporary)]
    try:
        result = subprocess.run(command, input=np.ascontiguousarray(frames_thwc_u8).tobytes(),
                                capture_output=True)
        if result.returncode != 0:
            raise RuntimeError(f"ffmpeg could not encode {path.name}: "
                               f"{result.stderr.decode(errors='replace').strip()[-500:]}")
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
