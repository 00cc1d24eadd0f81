"""Write short, real video files with the ffmpeg that imageio-ffmpeg ships.

Used by the tests and benchmarks: every clip is a genuine H.264 stream in a real
container, with real AAC audio tracks, optional subtitle track, chapters, rotation tag
and variable frame rate, so the media code is exercised on what users actually have.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class ClipSpec:
    frames: int = 24
    fps: str = "25"  # a rational as ffmpeg writes it: "25", "30000/1001"
    width: int = 64
    height: int = 48
    audio_tracks: int = 1  # AAC, 48 kHz; 0 = no audio
    subtitle_track: bool = False  # a text subtitle stream (srt in mkv, mov_text in mp4)
    chapters: bool = False
    container: str = "mp4"  # mp4, mkv, mov
    rotation: int = 0  # display rotation tag, degrees counter-clockwise (0, 90, 180, 270)
    variable_frame_rate: bool = False  # irregular frame intervals around the nominal rate
    pattern: str = "testsrc2"  # any lavfi source with a duration option: testsrc2, testsrc, smptehdbars, rgbtestsrc
    gop: int | None = None  # keyframe interval; None = x264's default
    pix_fmt: str | None = None  # None = yuv420p for even sizes, yuv444p for odd sizes
    preset: str = "ultrafast"

    @property
    def duration_s(self) -> float:
        return float(self.frames / Fraction(self.fps))


def write_clip(path: str | Path, spec: ClipSpec = ClipSpec()) -> Path:
    """Encode a clip described by ``spec`` to ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="clip-") as scratch:
        scratch_dir = Path(scratch)
        encoded = path if spec.rotation == 0 else scratch_dir / f"unrotated{path.suffix}"
        _run(_encode_command(encoded, spec, scratch_dir))
        if spec.rotation:
            # The display matrix is an input-side option in ffmpeg >= 6; stream copy keeps it.
            _run([ffmpeg_exe(), "-y", "-v", "error", "-display_rotation", str(spec.rotation),
                  "-i", str(encoded), "-map", "0", "-c", "copy", str(path)])
    return path


def _encode_command(path: Path, spec: ClipSpec, scratch_dir: Path) -> list[str]:
    # lavfi test sources round odd sizes down: render even, then crop to the exact size.
    size = f"{spec.width + spec.width % 2}x{spec.height + spec.height % 2}"
    # (4:4:4 before cropping: a 4:2:0 crop would round the size to even again).
    filters = ([f"format=yuv444p,crop={spec.width}:{spec.height}:0:0"]
               if spec.width % 2 or spec.height % 2 else [])
    duration = spec.duration_s + 0.5  # sources run a little long; -frames:v cuts exactly
    cmd = [ffmpeg_exe(), "-y", "-v", "error",
           "-f", "lavfi", "-i", f"{spec.pattern}=size={size}:rate={spec.fps}:duration={duration}"]
    for track in range(spec.audio_tracks):
        frequency = 440 * (track + 1)
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate=48000:duration={spec.duration_s}"]
    next_input = 1 + spec.audio_tracks
    subtitle_input = chapters_input = None
    if spec.subtitle_track:
        srt = scratch_dir / "subs.srt"
        srt.write_text(_srt_text(spec.duration_s))
        cmd += ["-i", str(srt)]
        subtitle_input, next_input = next_input, next_input + 1
    if spec.chapters:
        meta = scratch_dir / "chapters.ffmeta"
        meta.write_text(_chapters_text(spec.duration_s))
        cmd += ["-f", "ffmetadata", "-i", str(meta)]
        chapters_input = next_input

    cmd += ["-map", "0:v"]
    for track in range(spec.audio_tracks):
        cmd += ["-map", f"{1 + track}:a"]
    if subtitle_input is not None:
        cmd += ["-map", f"{subtitle_input}:s"]
    if chapters_input is not None:
        cmd += ["-map_chapters", str(chapters_input)]

    pix_fmt = spec.pix_fmt or ("yuv420p" if spec.width % 2 == 0 and spec.height % 2 == 0 else "yuv444p")
    cmd += ["-frames:v", str(spec.frames), "-c:v", "libx264", "-preset", spec.preset, "-pix_fmt", pix_fmt]
    if spec.gop is not None:
        cmd += ["-g", str(spec.gop)]
    if spec.variable_frame_rate:
        # Irregular but monotonic timestamps: the nominal interval plus a 0/1/2-step wobble.
        # settb first: in the source's 1/fps time base the wobble would round away.
        nominal = float(1 / Fraction(spec.fps))
        filters += ["settb=1/90000", f"setpts=(N*{nominal}+mod(N\\,3)*{nominal / 3:.6f})/TB"]
        cmd += ["-fps_mode", "vfr", "-enc_time_base", "1/90000"]
    if filters:
        cmd += ["-vf", ",".join(filters)]
    if spec.audio_tracks:
        cmd += ["-c:a", "aac", "-b:a", "64k"]
    if subtitle_input is not None:
        cmd += ["-c:s", "srt" if spec.container == "mkv" else "mov_text"]
    cmd += ["-f", {"mp4": "mp4", "mkv": "matroska", "mov": "mov"}[spec.container], str(path)]
    return cmd


def _srt_text(duration_s: float) -> str:
    end = max(duration_s - 0.05, 0.1)
    return f"1\n00:00:00,000 --> {_srt_time(end)}\nHello from a subtitle track\n"


def _srt_time(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def _chapters_text(duration_s: float) -> str:
    half = int(duration_s * 500)
    whole = int(duration_s * 1000)
    return (";FFMETADATA1\n"
            f"[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND={half}\ntitle=Opening\n"
            f"[CHAPTER]\nTIMEBASE=1/1000\nSTART={half}\nEND={whole}\ntitle=Ending\n")


def _run(cmd: list[str]) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def write_barcode_clip(path: str | Path, *, frames: int, fps: str = "25", width: int = 128, height: int = 64,
                       audio: bool = True, gop: int | None = None) -> Path:
    """A real H.264 clip whose frame i carries i as a barcode in its top rows (see
    clear_ray.testing.removers.read_barcode) over a moving gradient, with AAC audio."""
    import numpy as np

    from clear_ray.testing.removers import stamp_barcode

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    duration = frames / Fraction(fps)
    cmd = [ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
           "-framerate", fps, "-i", "pipe:0"]
    if audio:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency=330:sample_rate=48000:duration={float(duration)}",
                "-c:a", "aac", "-b:a", "64k"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-pix_fmt", "yuv444p"]
    if gop is not None:
        cmd += ["-g", str(gop)]
    cmd += [str(path)]
    process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    ys, xs = np.mgrid[0:height, 0:width]
    for index in range(frames):
        frame = np.empty((height, width, 3), np.uint8)
        frame[..., 0] = (xs * 2 + index * 3) % 256
        frame[..., 1] = (ys * 3 + index * 5) % 256
        frame[..., 2] = 128
        stamp_barcode(frame, index, row=0)
        process.stdin.write(frame.tobytes())
    process.stdin.close()
    if process.wait() != 0:
        raise RuntimeError(f"ffmpeg failed: {process.stderr.read().decode()[-2000:]}")
    return path
