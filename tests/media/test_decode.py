"""Frame-exact range decoding: every range equals the same frames of one plain sequential
decode, on files with B-frames, small GOPs, edit lists, no cues, a lying keyframe index,
a mid-GOP start, decode-order timestamps (AVI), no timestamps (raw H.264), 1 and 2 frames."""

from __future__ import annotations

import logging
import random
import subprocess

import av
import numpy as np
import pytest

from clear_ray.media import CorruptStream, decode, frame_timestamps, iter_frames, probe
from clear_ray.media.decode import _RgbConverter
from clear_ray.media.probe import inspect
from clear_ray.testing.clips import ffmpeg_exe

pytestmark = pytest.mark.timeout(120)


def ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", *args], check=True)


def sequential_decode(path, info) -> np.ndarray:
    """The reference: PyAV decodes the whole stream front to back, nothing skipped."""
    convert = _RgbConverter(info)
    with av.open(str(path)) as container:
        return np.stack([convert(frame) for frame in container.decode(video=0)])


def remux_video(source, target, *, all_keyframes: bool = False, skip_packets: int = 0,
                repeat_pts_of: int | None = None) -> None:
    """Copy the video packets into Matroska, optionally lying about keyframes (the muxer
    then writes a seek index pointing at non-key frames), starting mid-GOP, or giving
    packet ``repeat_pts_of + 1`` the timestamp of its predecessor (no B-frames assumed)."""
    with av.open(str(source)) as reader, av.open(str(target), "w", format="matroska") as writer:
        stream_in = reader.streams.video[0]
        stream_out = writer.add_stream_from_template(stream_in)
        packets = [packet for packet in reader.demux(stream_in) if packet.size]
        source_pts = [packet.pts for packet in packets]  # (muxing rescales packets in place)
        for number, packet in enumerate(packets[skip_packets:]):
            if all_keyframes:
                packet.is_keyframe = True
            if repeat_pts_of is not None and number == repeat_pts_of + 1:
                packet.pts = packet.dts = source_pts[repeat_pts_of]
            packet.stream = stream_out
            writer.mux(packet)


@pytest.fixture
def bframe_clip(make_clip):
    # x264 "medium": B-frames (pyramid) and a keyframe every 12 frames.
    return make_clip("bframes.mp4", frames=60, preset="medium", gop=12)


def special_file(kind: str, make_clip, bframe_clip, tmp_path):
    if kind == "bframes-default-gop":
        return make_clip("b.mp4", frames=60, preset="medium")
    if kind == "small-gop":
        return make_clip("g.mp4", frames=40, preset="medium", gop=4)
    if kind == "bframes-gop12":
        return bframe_clip
    if kind == "edit-list":  # starts mid-GOP: the edit list hides the GOP's first frames
        ffmpeg("-ss", "0.3", "-i", str(bframe_clip), "-c", "copy", str(tmp_path / "cut.mp4"))
        return tmp_path / "cut.mp4"
    if kind == "mkv-without-cues":  # a non-seekable output gets no index
        with open(tmp_path / "nocues.mkv", "wb") as out:
            subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(bframe_clip), "-c", "copy",
                            "-f", "matroska", "pipe:1"], stdout=out, check=True)
        return tmp_path / "nocues.mkv"
    if kind == "wrong-keyframe-index":
        remux_video(bframe_clip, tmp_path / "allkey.mkv", all_keyframes=True)
        return tmp_path / "allkey.mkv"
    if kind == "mid-gop-start":
        remux_video(bframe_clip, tmp_path / "midgop.mkv", skip_packets=3)
        return tmp_path / "midgop.mkv"
    if kind == "avi-decode-order-pts":
        ffmpeg("-i", str(bframe_clip), "-c:v", "copy", "-an", str(tmp_path / "b.avi"))
        return tmp_path / "b.avi"
    if kind == "raw-h264-no-pts":
        ffmpeg("-i", str(bframe_clip), "-c:v", "copy", "-an", str(tmp_path / "b.h264"))
        return tmp_path / "b.h264"
    if kind == "repeated-pts":
        remux_video(make_clip("u.mp4", frames=20, gop=5), tmp_path / "dup.mkv", repeat_pts_of=6)
        return tmp_path / "dup.mkv"
    if kind == "1-frame":
        return make_clip("one.mp4", frames=1)
    if kind == "2-frames":
        return make_clip("two.mkv", frames=2, preset="medium")
    if kind == "vfr-odd-rot270":
        return make_clip("v.mp4", frames=30, variable_frame_rate=True, width=85, height=47, rotation=270,
                         preset="medium", gop=9)
    raise AssertionError(kind)


def interesting_ranges(path, count: int) -> list[tuple[int, int]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        keys = sorted(packet.pts for packet in container.demux(stream)
                      if packet.size and packet.is_keyframe and packet.pts is not None)
    pts = frame_timestamps(str(path)).tolist()
    key_indices = [pts.index(key) for key in keys if key in pts][1:4]
    ranges = {(0, count), (0, 1), (count - 1, count), (count // 2, count // 2 + 1)}
    for key in key_indices:  # across a keyframe, and starting in the middle of a GOP
        ranges |= {(key - 1, min(count, key + 2)), (min(count - 1, key + 2), min(count, key + 5))}
    rng = random.Random(count)
    for _ in range(3):
        start = rng.randrange(count)
        ranges.add((start, rng.randrange(start + 1, count + 1)))
    return sorted(ranges)


KINDS = ["bframes-default-gop", "small-gop", "edit-list", "mkv-without-cues", "wrong-keyframe-index",
         "mid-gop-start", "avi-decode-order-pts", "raw-h264-no-pts", "repeated-pts", "1-frame", "2-frames",
         "vfr-odd-rot270"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_range_equals_the_sequential_decode(kind, make_clip, bframe_clip, tmp_path):
    path = special_file(kind, make_clip, bframe_clip, tmp_path)
    info, pts = inspect(str(path))
    reference_thwc_u8 = sequential_decode(path, info)
    assert info.num_frames == len(reference_thwc_u8)
    assert info.exact_seek == (kind not in ("avi-decode-order-pts", "raw-h264-no-pts"))
    ranges = interesting_ranges(path, info.num_frames)
    if kind == "repeated-pts":
        assert pts[6] == pts[7]
        ranges += [(7, 8), (7, 10), (6, 8), (5, 7)]
    for start, stop in ranges:
        frames = list(iter_frames(str(path), start, stop, info=info, timestamps=pts))
        assert [frame.index for frame in frames] == list(range(start, stop))
        assert [frame.pts for frame in frames] == pts[start:stop].tolist()
        got_thwc_u8 = np.stack([frame.rgb_hwc_u8 for frame in frames])
        assert np.array_equal(got_thwc_u8, reference_thwc_u8[start:stop]), (kind, start, stop)
        # The row-friendly call the pipeline makes: info + start_pts, no timestamps array
        # (which names the first frame with that pts: a repeated pts needs the array).
        if start == 0 or pts[start - 1] != pts[start]:
            fast = decode(str(path), start, stop, info=info, start_pts=int(pts[start]))
            assert np.array_equal(fast, reference_thwc_u8[start:stop]), (kind, start, stop, "start_pts")
    # With start_pts alone (header read, no scan), and with nothing but the URI (it scans).
    middle = info.num_frames // 2
    assert np.array_equal(decode(str(path), middle, info.num_frames, start_pts=int(pts[middle])),
                          reference_thwc_u8[middle:])
    assert np.array_equal(decode(str(path), middle, info.num_frames), reference_thwc_u8[middle:])


def test_start_pts_spares_the_scan(bframe_clip, monkeypatch):
    import importlib

    probe_module = importlib.import_module("clear_ray.media.probe")  # (the package's `probe` is the function)

    info, pts = inspect(str(bframe_clip))
    reference_thwc_u8 = sequential_decode(bframe_clip, info)

    def no_scan(*args, **kwargs):
        raise AssertionError("the file was scanned")

    monkeypatch.setattr(probe_module, "_scan_packets", no_scan)
    got = decode(str(bframe_clip), 25, 40, start_pts=int(pts[25]))
    assert np.array_equal(got, reference_thwc_u8[25:40])
    got = decode(str(bframe_clip), 25, 40, start_pts=int(pts[25]), info=info)
    assert np.array_equal(got, reference_thwc_u8[25:40])
    with pytest.raises(AssertionError, match="scanned"):
        decode(str(bframe_clip), 25, 40)


def test_a_lying_index_is_retried_not_trusted(make_clip, bframe_clip, tmp_path, caplog):
    path = special_file("wrong-keyframe-index", make_clip, bframe_clip, tmp_path)
    info, pts = inspect(str(path))
    reference_thwc_u8 = sequential_decode(path, info)
    with caplog.at_level(logging.DEBUG, logger="clear_ray.media.decode"):
        # Backwards, so that a kept decode (none is kept without keep_decoder) could not serve.
        for start in reversed(range(1, info.num_frames, 5)):
            got = decode(str(path), start, start + 1, info=info, timestamps=pts)
            assert np.array_equal(got, reference_thwc_u8[start:start + 1])
    assert "retrying further back" in caplog.text  # the fallback really ran


def test_rotated_frames_are_display_oriented(make_clip):
    path = make_clip("r.mp4", frames=3, rotation=90, width=64, height=48)
    raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
    ffmpeg_autorotated = np.frombuffer(raw, np.uint8).reshape(64, 48, 3)  # ffmpeg rotates for display
    frame = decode(str(path), 0, 1)[0]
    assert frame.shape == (64, 48, 3)
    # (Chroma interpolation differs slightly between ffmpeg's CLI and us, hence no equality;
    # the same picture upside down is what a wrong rotation would give.)
    error = np.abs(frame.astype(int) - ffmpeg_autorotated).mean()
    upside_down_error = np.abs(np.rot90(frame, 2).astype(int) - ffmpeg_autorotated).mean()
    assert error < 10 and upside_down_error > 5 * error


def test_empty_and_invalid_ranges(make_clip):
    path = str(make_clip("c.mp4", frames=5))
    info = probe(path)
    assert decode(path, 2, 2, info=info, start_pts=0).shape == (0, 48, 64, 3)
    with pytest.raises(ValueError):
        decode(path, 3, 6, info=info, start_pts=0)
    with pytest.raises(ValueError):
        decode(path, 3, 2)


def test_a_container_that_claims_more_frames_ends_with_an_error_not_a_hang(make_clip):
    path = str(make_clip("c.mp4", frames=10))
    info, pts = inspect(path)
    lying = info.model_copy(update={"num_frames": 15})
    beyond = int(pts[-1]) + 5 * info.frame_ticks
    with pytest.raises(CorruptStream, match="file ends after|cannot decode frame"):
        decode(path, 12, 14, info=lying, start_pts=beyond)
    with pytest.raises(CorruptStream, match="file ends after 10 of 15 frames"):
        decode(path, 8, 13, info=lying, start_pts=int(pts[8]))


def test_decoding_reads_from_s3(make_clip, s3_server, s3_bucket, bframe_clip):
    uri = f"{s3_bucket}/b.mp4"
    s3_server.filesystem().put_file(str(bframe_clip), uri)
    options = s3_server.storage_options()
    info, pts = inspect(uri, storage_options=options)
    reference_thwc_u8 = sequential_decode(bframe_clip, info)
    got = decode(uri, 13, 30, info=info, start_pts=int(pts[13]), storage_options=options)
    assert np.array_equal(got, reference_thwc_u8[13:30])


def test_fast_rgb_is_close_to_the_accurate_conversion(natural_clip):
    """The remover's input may take swscale's fast converter; it stays close to the
    accurate RGB that output pixels come from."""
    info, pts = inspect(str(natural_clip))
    accurate = decode(str(natural_clip), 100, 104, info=info, timestamps=pts)
    fast = decode(str(natural_clip), 100, 104, info=info, timestamps=pts, rgb="fast")
    assert fast.shape == accurate.shape and fast.dtype == np.uint8
    mse = np.mean((fast.astype(np.float64) - accurate) ** 2)
    assert 0 < mse and 10 * np.log10(255.0 ** 2 / mse) > 38
    with pytest.raises(ValueError, match="rgb must be"):
        decode(str(natural_clip), 0, 1, info=info, timestamps=pts, rgb="exact")


def test_rgb_is_made_only_when_asked(bframe_clip, monkeypatch):
    info, pts = inspect(str(bframe_clip))
    calls = []
    original = _RgbConverter.__call__
    monkeypatch.setattr(_RgbConverter, "__call__", lambda self, frame: calls.append(1) or original(self, frame))
    frames = list(iter_frames(str(bframe_clip), 10, 20, info=info, timestamps=pts))
    assert calls == [] and frames[0].video_frame.format.name == "yuv420p"
    assert np.array_equal(frames[3].rgb_hwc_u8, frames[3].rgb_hwc_u8) and len(calls) == 1  # converted once, kept


def test_non_reference_frames_before_the_range_are_not_decoded(bframe_clip, monkeypatch):
    """From the keyframe to the first wanted frame, B-frames nothing refers to are
    skipped (fewer pictures decoded), and the range is still exact."""
    import importlib

    decode_module = importlib.import_module("clear_ray.media.decode")
    info, pts = inspect(str(bframe_clip))
    reference_thwc_u8 = sequential_decode(bframe_clip, info)
    start = 12 + 10  # keyframes every 12 frames: 10 frames to walk through first
    original = decode_module._RangeReader._frames
    seen: dict[bool, list[int]] = {}

    def counting(self, container, skip_before_pts=None, *, skip: bool):
        seen[skip] = []
        for frame in original(self, container, skip_before_pts if skip else None):
            seen[skip].append(frame.pts)
            yield frame

    for skip in (False, True):
        decode_module.close_kept_decodes()  # the same range again must seek, not continue
        monkeypatch.setattr(decode_module._RangeReader, "_frames",
                            lambda self, container, skip_before_pts=None, s=skip: counting(
                                self, container, skip_before_pts, skip=s))
        got = decode(str(bframe_clip), start, start + 5, info=info, timestamps=pts)
        assert np.array_equal(got, reference_thwc_u8[start:start + 5])
    walked = {skip: [p for p in seen[skip] if p < pts[start]] for skip in seen}
    assert len(walked[False]) == 10  # every picture from the keyframe on
    assert 0 < len(walked[True]) < len(walked[False])  # the references only


def test_chunks_of_a_file_without_exact_seek_decode_it_once(bframe_clip, tmp_path):
    """AVI keeps B-frame timestamps in decode order, so frames are found by counting from
    the start. Overlapping chunks asked for in order (as an actor gets them) decode the
    file once in all, not once per chunk (quadratic); any other order stays exact."""
    from clear_ray.chunking import plan_chunks
    from clear_ray.media.decode import decoded_frame_count

    path = special_file("avi-decode-order-pts", None, bframe_clip, tmp_path)
    info, pts = inspect(str(path))
    assert not info.exact_seek
    reference_thwc_u8 = sequential_decode(path, info)
    chunks = plan_chunks(info.num_frames, 13, 4)
    assert len(chunks) >= 5

    def decode_chunks(order) -> int:
        before = decoded_frame_count()
        for chunk in order:
            # The denoise actor's call: info and the chunk's first pts, no timestamps array.
            got_thwc_u8 = decode(str(path), chunk.start, chunk.stop, start_pts=int(pts[chunk.start]), info=info)
            assert np.array_equal(got_thwc_u8, reference_thwc_u8[chunk.start:chunk.stop]), chunk
        return decoded_frame_count() - before

    assert decode_chunks(chunks) == info.num_frames  # each frame decoded once
    quadratic = sum(chunk.stop for chunk in chunks)  # what decoding from frame 0 per chunk costs
    assert decode_chunks(chunks[::-1]) < quadratic  # backwards: exact still (kept frames help a little)
    assert decode_chunks([chunks[2], chunks[0], chunks[4]]) > 0


def test_chunks_of_a_seekable_file_in_order_continue_one_decode(make_clip):
    """A worker taking a video's chunks in order (or every other chunk, as one of two
    workers does) continues its kept decode instead of seeking back to the keyframe before
    each chunk: every frame is decoded once, and every chunk is still exact."""
    from clear_ray.chunking import plan_chunks
    from clear_ray.media.decode import decoded_frame_count

    path = make_clip("longgop.mp4", frames=120, preset="medium", gop=60)  # B-frames, 2 GOPs
    info, pts = inspect(str(path))
    assert info.exact_seek
    reference_thwc_u8 = sequential_decode(path, info)
    chunks = plan_chunks(info.num_frames, 13, 4)

    def decode_chunks(order) -> int:
        before = decoded_frame_count()
        for chunk in order:
            got_thwc_u8 = decode(str(path), chunk.start, chunk.stop, start_pts=int(pts[chunk.start]), info=info,
                                 keep_decoder=True)  # as the remover actor asks
            assert np.array_equal(got_thwc_u8, reference_thwc_u8[chunk.start:chunk.stop]), chunk
        return decoded_frame_count() - before

    assert decode_chunks(chunks) == info.num_frames  # in order: one decode of the file
    # Every other chunk: the skipped chunk's frames are decoded on the way, not sought past.
    assert decode_chunks(chunks[1::2]) <= chunks[1::2][-1].stop
    # Backwards every range needs a seek: decoding from each chunk's keyframe costs more.
    seeks = decode_chunks(chunks[::-1])
    assert seeks > info.num_frames


def test_chunks_decoded_into_the_previous_chunks_array_are_exact(make_clip):
    """The remover actor decodes each chunk into its previous chunk's array: the frames are
    the same as a fresh decode, they live in that array, and an array without room (fewer
    frames, another size) is not written."""
    from clear_ray.chunking import plan_chunks

    path = make_clip("reuse.mp4", frames=40, preset="medium", gop=12)
    info, pts = inspect(str(path))
    reference_thwc_u8 = sequential_decode(path, info)
    chunks = plan_chunks(info.num_frames, 13, 4)
    array_thwc_u8 = None
    for chunk in chunks:
        got_thwc_u8 = decode(str(path), chunk.start, chunk.stop, start_pts=int(pts[chunk.start]), info=info,
                             keep_decoder=True, into=array_thwc_u8)
        assert np.array_equal(got_thwc_u8, reference_thwc_u8[chunk.start:chunk.stop]), chunk
        if array_thwc_u8 is not None:
            assert np.shares_memory(got_thwc_u8, array_thwc_u8), chunk
        array_thwc_u8 = got_thwc_u8.base if got_thwc_u8.base is not None else got_thwc_u8

    too_few = np.full((3, info.height, info.width, 3), 7, np.uint8)
    other_size = np.full((13, info.height, info.width + 2, 3), 7, np.uint8)
    for unusable in (too_few, other_size):
        got_thwc_u8 = decode(str(path), 0, 13, start_pts=int(pts[0]), info=info, into=unusable)
        assert np.array_equal(got_thwc_u8, reference_thwc_u8[:13])
        assert not np.shares_memory(got_thwc_u8, unusable) and (unusable == 7).all()
