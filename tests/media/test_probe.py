"""probe / frame_timestamps on real clips, pairwise over frame counts, rates, sizes,
rotation, containers and streams; the reference for counts and timestamps is PyAV's own
sequential decode, independent of the demux scan under test."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

from clear_ray.media import VideoInfo, frame_timestamps, probe
from clear_ray.media.probe import inspect

pytestmark = pytest.mark.timeout(120)

MKV_STREAMS = dict(audio_tracks=2, subtitle_track=True, chapters=True)

# Pairwise, not a cross product: every frame count, rate, size class, rotation,
# container and stream layout appears, in different combinations.
CASES = {
    "1f-24fps-mp4-audio": ("c.mp4", dict(frames=1, fps="24")),
    "2f-25fps-odd-mkv-noaudio": ("c.mkv", dict(frames=2, fps="25", width=85, height=47, audio_tracks=0)),
    "80f-ntsc-rot90-mov": ("c.mov", dict(frames=80, fps="30000/1001", rotation=90)),
    "81f-60fps-odd-rot90-mp4-noaudio": ("c.mp4", dict(frames=81, fps="60", width=85, height=47, rotation=90,
                                                      audio_tracks=0)),
    "82f-vfr-mkv-streams": ("c.mkv", dict(frames=82, variable_frame_rate=True, **MKV_STREAMS)),
    "200f-24fps-mkv-streams-rot90-bframes": ("c.mkv", dict(frames=200, fps="24", rotation=90, preset="veryfast",
                                                           **MKV_STREAMS)),
    "1000f-60fps-tiny-mp4": ("c.mp4", dict(frames=1000, fps="60", width=32, height=16, audio_tracks=0)),
    "24f-ntsc-854x480-mp4": ("c.mp4", dict(frames=24, fps="30000/1001", width=854, height=480)),
    "30f-vfr-odd-mp4-audio": ("c.mp4", dict(frames=30, variable_frame_rate=True, width=85, height=47)),
}


def decoded_pts(path) -> list[int]:
    """Every frame's pts as PyAV's plain sequential decode reports it."""
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


@pytest.mark.parametrize("name", list(CASES))
def test_probe_matches_the_clip(make_clip, name):
    filename, fields = CASES[name]
    path = make_clip(filename, **fields)
    spec_fps = Fraction(fields.get("fps", "25"))
    frames = fields["frames"]
    width, height = fields.get("width", 64), fields.get("height", 48)
    rotation = fields.get("rotation", 0)

    info = probe(str(path))

    assert info.num_frames == frames == len(decoded_pts(path))
    assert info.extension == filename[-4:]
    assert info.container == ("matroska,webm" if filename.endswith(".mkv") else "mov,mp4,m4a,3gp,3g2,mj2")
    assert (info.coded_width, info.coded_height) == (width, height)
    assert (info.width, info.height) == ((height, width) if rotation in (90, 270) else (width, height))
    assert info.rotation == rotation
    assert info.audio_streams == fields.get("audio_tracks", 1)
    assert info.subtitle_streams == int(fields.get("subtitle_track", False))
    assert info.has_chapters == fields.get("chapters", False)
    assert info.bit_depth == 8
    assert info.pix_fmt == ("yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p")
    assert info.variable_frame_rate == fields.get("variable_frame_rate", False)
    if not info.variable_frame_rate:
        assert info.fps_fraction == spec_fps
        assert info.duration_s == pytest.approx(frames / spec_fps, abs=2e-3)
    assert info.size_bytes == path.stat().st_size
    assert info.exact_seek


@pytest.mark.parametrize("name", ["82f-vfr-mkv-streams", "200f-24fps-mkv-streams-rot90-bframes",
                                  "80f-ntsc-rot90-mov", "1f-24fps-mp4-audio"])
def test_frame_timestamps_are_the_decoders_in_presentation_order(make_clip, name):
    filename, fields = CASES[name]
    path = make_clip(filename, **fields)
    pts = frame_timestamps(str(path))
    assert pts.dtype == np.int64
    assert pts.tolist() == decoded_pts(path)
    info = probe(str(path))
    assert info.start_pts == pts[0]
    assert Fraction(info.time_base) == av.open(str(path)).streams.video[0].time_base


def test_variable_rate_clip_keeps_its_irregular_intervals(make_clip):
    info, pts = inspect(str(make_clip("vfr.mp4", frames=30, variable_frame_rate=True)))
    intervals = set(np.diff(pts).tolist())
    assert info.variable_frame_rate and len(intervals) >= 3
    span_s = float((pts[-1] - pts[0]) * Fraction(info.time_base))
    assert info.fps_fraction == pytest.approx((len(pts) - 1) / span_s, rel=1e-3)


def test_probe_reads_from_s3(make_clip, s3_server, s3_bucket):
    path = make_clip("c.mkv", frames=20, **MKV_STREAMS)
    uri = f"{s3_bucket}/videos/c.mkv"
    s3_server.filesystem().put_file(str(path), uri)
    remote = probe(uri, storage_options=s3_server.storage_options())
    local = probe(str(path))
    assert remote.model_dump(exclude={"uri"}) == local.model_dump(exclude={"uri"})
    assert remote.uri == uri
    assert frame_timestamps(uri, storage_options=s3_server.storage_options()).tolist() == decoded_pts(path)


def test_video_info_survives_json(make_clip):
    info = probe(str(make_clip("c.mkv", frames=5, **MKV_STREAMS)))
    assert VideoInfo.model_validate_json(info.model_dump_json()) == info
    assert info.audio_codecs == ("aac", "aac") and info.subtitle_codecs == ("srt",)
    with pytest.raises(Exception):
        info.num_frames = 3  # frozen: it travels in Ray rows


def test_colour_tags_are_reported(tmp_path):
    from clear_ray.testing.clips import ffmpeg_exe

    path = tmp_path / "tagged.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.2",
                    "-vf", "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=pc",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)], check=True)
    info = probe(str(path))
    assert (info.color_space, info.color_primaries, info.color_trc, info.color_range) == ("bt709",) * 3 + ("pc",)


def test_importing_the_package_does_not_import_pyav():
    code = "import sys, clear_ray.media; assert 'av' not in sys.modules, 'av imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
