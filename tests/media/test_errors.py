"""Bad input gets the right MediaError subclass with a one-line reason, quickly."""

from __future__ import annotations

import subprocess

import pytest

from clear_ray.media import (
    CorruptStream,
    EmptyFile,
    FrameTooLarge,
    MediaError,
    MissingFile,
    NotAVideo,
    NoVideoStream,
    RemoteReadError,
    UnsupportedFormat,
    decode,
    probe,
)
from clear_ray.testing.clips import ffmpeg_exe

pytestmark = pytest.mark.timeout(60)  # nothing here may hang


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", *args], check=True)


def expect(error_type: type[MediaError], uri: str, match: str, **kwargs) -> MediaError:
    with pytest.raises(error_type, match=match) as caught:
        probe(uri, **kwargs)
    error = caught.value
    assert isinstance(error, MediaError)
    assert "\n" not in str(error) and "\n" not in error.reason and error.reason
    assert error.uri == uri and str(error).startswith(uri)
    return error


def test_missing_file(tmp_path):
    expect(MissingFile, str(tmp_path / "nope.mp4"), "no such file")
    expect(MissingFile, str(tmp_path), "not a regular file")


def test_zero_byte_file(tmp_path):
    (tmp_path / "empty.mp4").touch()
    expect(EmptyFile, str(tmp_path / "empty.mp4"), "0 bytes")


def test_text_file_named_mp4(tmp_path):
    (tmp_path / "notes.mp4").write_text("these are not the frames you are looking for\n" * 50)
    expect(NotAVideo, str(tmp_path / "notes.mp4"), "not a media file")


def test_audio_only_file(tmp_path):
    path = tmp_path / "song.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=duration=0.5", "-c:a", "aac", str(path))
    expect(NoVideoStream, str(path), r"no video stream \(streams: audio\)")


def test_truncated_mp4_index_at_the_end(make_clip, tmp_path):
    data = make_clip("c.mp4", frames=50).read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[:len(data) // 2])  # the moov index is gone
    expect(CorruptStream, str(tmp_path / "half.mp4"), "MP4/MOV container is truncated or corrupt")


def test_truncated_mp4_index_at_the_start(make_clip, tmp_path):
    faststart = tmp_path / "faststart.mp4"
    ffmpeg("-i", str(make_clip("c.mp4", frames=50)), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    (tmp_path / "half.mp4").write_bytes(data[:len(data) // 2])  # index intact, samples cut
    expect(CorruptStream, str(tmp_path / "half.mp4"), r"file ends after \d+ of 50 frames")


def test_frame_size_above_max_pixels_is_refused_before_decoding(make_clip):
    path = str(make_clip("c.mp4", frames=3, width=64, height=48))
    expect(FrameTooLarge, path, "64x48 = 3072 pixels exceeds max_pixels=3071", max_pixels=3071)
    info = probe(path)
    with pytest.raises(FrameTooLarge):
        decode(path, 0, 1, info=info, start_pts=info.start_pts, max_pixels=1000)


def test_deeper_than_ten_bits_is_refused(tmp_path):
    path = tmp_path / "deep12.mkv"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.12", "-pix_fmt", "yuv420p12le",
           "-c:v", "ffv1", str(path))
    expect(UnsupportedFormat, str(path), "12-bit video .*at most 10-bit")
    assert probe(str(path), check_supported=False).bit_depth == 12  # still describable


def test_missing_s3_key_and_bad_credentials(make_clip, s3_server, s3_bucket):
    options = s3_server.storage_options()
    expect(RemoteReadError, f"{s3_bucket}/no/such/key.mp4", "missing key", storage_options=options)
    uri = f"{s3_bucket}/c.mp4"
    s3_server.filesystem().put_file(str(make_clip("c.mp4", frames=3)), uri)
    expect(RemoteReadError, uri, "permission denied|cannot read", storage_options=dict(options, secret="wrong"))
    assert probe(uri, storage_options=options).num_frames == 3


def test_truncated_or_damaged_matroska(make_clip, tmp_path):
    data = make_clip("c.mkv", frames=100).read_bytes()
    (tmp_path / "half.mkv").write_bytes(data[:len(data) // 2])
    expect(CorruptStream, str(tmp_path / "half.mkv"), r"file ends after \d+ frames: its data stops at")
    damaged = bytearray(data)  # garbage in the middle: the demuxer loses the rest
    middle = len(data) // 2
    damaged[middle:middle + 2000] = bytes((7 * k) % 256 for k in range(2000))
    (tmp_path / "damaged.mkv").write_bytes(bytes(damaged))
    expect(CorruptStream, str(tmp_path / "damaged.mkv"), r"file ends after \d+ frames")
