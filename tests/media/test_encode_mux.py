"""Segments round trip: decode every frame, encode 2-3 independently encoded segments at
arbitrary boundaries, mux with the source, and check that the result is the same video:
frame count, every pts, size, rotation, colour tags, container family, audio/subtitle
packets bit for bit, chapters; plus quality on natural footage, atomicity, S3, comparison."""

from __future__ import annotations

import hashlib
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clear_ray.media import (
    MediaError,
    SegmentEncoder,
    decode,
    iter_frames,
    mux,
    output_extension,
    output_extension_for,
    probe,
    write_comparison,
)
from clear_ray.media.probe import inspect
from clear_ray.testing.clips import ffmpeg_exe

pytestmark = pytest.mark.timeout(180)


# ---- independent readers (plain PyAV / ffmpeg, none of the code under test) ----------

def video_pts_seconds(path) -> list[Fraction]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sorted(Fraction(packet.pts) * stream.time_base for packet in container.demux(stream)
                      if packet.size and not packet.is_discard)


def video_timestamps_in_decode_order(path) -> list[tuple[int, int]]:
    with av.open(str(path)) as container:
        return [(packet.pts, packet.dts) for packet in container.demux(video=0) if packet.size]


def stream_packets(path, kind: str) -> list[list[tuple[Fraction | None, str]]]:
    """Per stream of ``kind``: (pts in seconds, payload hash) of every packet."""
    with av.open(str(path)) as container:
        streams = [stream for stream in container.streams if stream.type == kind]
        packets: dict[int, list] = {stream.index: [] for stream in streams}
        if streams:
            for packet in container.demux(streams):
                if packet.size:
                    seconds = None if packet.pts is None else Fraction(packet.pts) * packet.time_base
                    packets[packet.stream_index].append((seconds, hashlib.sha256(bytes(packet)).hexdigest()))
        return [packets[stream.index] for stream in streams]


def chapters(path) -> list[tuple[Fraction, Fraction, str]]:
    with av.open(str(path)) as container:
        return [(chapter["start"] * chapter["time_base"], chapter["end"] * chapter["time_base"],
                 chapter["metadata"].get("title", "")) for chapter in container.chapters()]


BARCODE_BITS, BARCODE_ROWS = 10, 8


def stamp_index(frame_hwc_u8: np.ndarray, index: int) -> np.ndarray:
    """The frame with its index written as black/white blocks along the bottom rows."""
    stamped = frame_hwc_u8.copy()
    block = frame_hwc_u8.shape[1] // BARCODE_BITS
    for bit in range(BARCODE_BITS):
        stamped[-BARCODE_ROWS:, bit * block:(bit + 1) * block] = 255 if index >> bit & 1 else 0
    return stamped


def read_index(frame_hwc_u8: np.ndarray) -> int:
    block = frame_hwc_u8.shape[1] // BARCODE_BITS
    rows = frame_hwc_u8[-BARCODE_ROWS + 2:-2].astype(np.float64)  # away from the edges' ringing
    return sum(1 << bit for bit in range(BARCODE_BITS)
               if rows[:, bit * block + 1:(bit + 1) * block - 1].mean() > 128)


def ffmpeg_complaints(path) -> set[str]:
    # (Timestamps kept in the demuxer's time base: a guessed CFR time base would collide
    # VFR frames, for the source as much as for ours.)
    check = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v", "-map", "0:a?",
                            "-fps_mode", "passthrough", "-enc_time_base", "demux", "-f", "null", "-"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    return {re.sub(r"0x[0-9a-f]+", "", line) for line in check.stderr.splitlines()}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


# ---- the round trip --------------------------------------------------------------------

def segments_round_trip(source: Path, out_dir: Path, *, boundaries: list[int] | None = None, stamp: bool = False,
                        **encoder_kwargs):
    """Decode all frames, encode them as segments (the identity transform; ``stamp`` adds
    each frame's index as a barcode), mux with the source. Returns what was encoded."""
    info, pts = inspect(str(source))
    frames_thwc_u8 = np.stack([frame.rgb_hwc_u8 for frame in
                               iter_frames(str(source), 0, info.num_frames, info=info, timestamps=pts)])
    if stamp:
        frames_thwc_u8 = np.stack([stamp_index(frame, index) for index, frame in enumerate(frames_thwc_u8)])
    count = info.num_frames
    cuts = boundaries or sorted({0, count // 3 + 1, (2 * count) // 3, count} & set(range(count + 1)))
    segment_paths = []
    for number, (start, stop) in enumerate(zip(cuts, cuts[1:])):
        if start == stop:
            continue
        segment_paths.append(out_dir / f"segment-{number}.mp4")
        with SegmentEncoder(segment_paths[-1], info, **encoder_kwargs) as encoder:
            for index in range(start, stop):
                encoder.write(int(pts[index]), frames_thwc_u8[index])
    output = out_dir / f"output{output_extension(info)}"
    mux(segment_paths, str(source), str(output), info)
    return info, frames_thwc_u8, output, len(segment_paths)


MKV_STREAMS = dict(audio_tracks=2, subtitle_track=True, chapters=True)  # (mp4: mov_text subtitles)
ROUND_TRIPS = {
    "24fps-mp4-audio": ("c.mp4", dict(frames=30, fps="24")),
    "25fps-mov-rot90": ("c.mov", dict(frames=30, fps="25", rotation=90, preset="medium")),
    "ntsc-mp4-bframes-2audio-subs-chapters": ("c.mp4", dict(frames=40, fps="30000/1001", preset="medium", gop=10,
                                                           **MKV_STREAMS)),
    "60fps-mkv-2audio-subs-chapters": ("c.mkv", dict(frames=36, fps="60", **MKV_STREAMS)),
    "vfr-mp4": ("c.mp4", dict(frames=30, variable_frame_rate=True)),
    "vfr-mkv-odd-streams": ("c.mkv", dict(frames=25, variable_frame_rate=True, width=85, height=47, **MKV_STREAMS)),
    "odd-rot270-mp4-noaudio": ("c.mp4", dict(frames=20, width=85, height=47, rotation=270, audio_tracks=0)),
    "1-frame-mkv": ("c.mkv", dict(frames=1, **MKV_STREAMS)),
    "2-frames-mp4": ("c.mp4", dict(frames=2, fps="30000/1001")),
}


@pytest.mark.parametrize("name", list(ROUND_TRIPS))
def test_segments_round_trip_is_the_same_video(name, make_clip, tmp_path):
    filename, fields = ROUND_TRIPS[name]
    source = make_clip(filename, **fields)
    info, stamped_thwc_u8, output, segments = segments_round_trip(source, tmp_path, preset="medium", stamp=True)
    out_info, out_pts = inspect(str(output))

    assert segments == min(3, info.num_frames)
    assert out_info.num_frames == info.num_frames
    assert video_pts_seconds(output) == video_pts_seconds(source)  # every timestamp, exactly
    in_decode_order = video_timestamps_in_decode_order(output)
    dts = [d for _, d in in_decode_order if d is not None]
    assert all(a < b for a, b in zip(dts, dts[1:])), "dts not strictly increasing"
    assert all(d <= p for p, d in in_decode_order if d is not None)
    if info.num_frames >= 20:  # B-frames really are reordered, so the dts check means something
        assert any(d < p for p, d in in_decode_order if d is not None)
    for field in ("width", "height", "coded_width", "coded_height", "rotation", "time_base", "fps",
                  "variable_frame_rate", "color_range", "color_space", "color_primaries", "color_trc",
                  "audio_streams", "subtitle_streams", "has_chapters", "container", "sample_aspect_ratio"):
        assert getattr(out_info, field) == getattr(info, field), field
    assert output.suffix == Path(filename).suffix  # container family kept
    assert out_info.pix_fmt == ("yuv420p" if info.coded_width % 2 == 0 and info.coded_height % 2 == 0
                                else "yuv444p")
    for kind in ("audio", "subtitle"):
        assert stream_packets(output, kind) == stream_packets(source, kind), kind
    assert chapters(output) == chapters(source)
    # FFmpeg itself decodes the file's video and audio without a complaint.
    assert ffmpeg_complaints(source) == ffmpeg_complaints(output) == set()

    # Every output frame is its own source frame (barcode): no drop, duplicate or swap.
    output_thwc_u8 = decode(str(output), 0, out_info.num_frames, info=out_info, timestamps=out_pts)
    assert [read_index(frame) for frame in output_thwc_u8] == list(range(info.num_frames))
    # (Tiny synthetic frames with saturated colour edges lose ~26 dB to 4:2:0 alone.)
    assert psnr(output_thwc_u8, stamped_thwc_u8) > 24


def test_natural_footage_psnr_at_crf17(natural_clip, tmp_path, capsys):
    info, source_thwc_u8, output, segments = segments_round_trip(
        natural_clip, tmp_path, boundaries=[0, 77, 161, 250], crf=17, preset="medium")
    assert (segments, info.num_frames) == (3, 250)
    out_info = probe(str(output))
    output_thwc_u8 = decode(str(output), 0, out_info.num_frames, info=out_info, start_pts=out_info.start_pts)
    value = psnr(output_thwc_u8, source_thwc_u8)
    worst = min(psnr(a, b) for a, b in zip(output_thwc_u8, source_thwc_u8))
    with capsys.disabled():
        print(f"\nbikes.mp4 segments round trip at CRF 17 / medium: PSNR {value:.2f} dB (worst frame {worst:.2f})")
    assert video_pts_seconds(output) == video_pts_seconds(natural_clip)
    assert value >= 40.0


def test_colours_round_trip_as_ffmpeg_sees_them(tmp_path):
    """An independent decoder (ffmpeg's CLI, reading our tags) sees the output's colours as
    the source's: a wrong matrix or range would shift every pixel. (CRF 10 and 4:4:4 keep
    the compression loss on this sharp synthetic pattern small: ~39 dB.)"""
    for tags in ("", "colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=pc",
                 "colorspace=bt470bg:color_primaries=bt470bg:color_trc=bt470bg:range=tv"):
        source = tmp_path / f"tags{len(tags)}.mp4"
        filters = "format=yuv444p,crop=85:47:0:0" + (f",setparams={tags}" if tags else "")
        subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=86x48:rate=25:duration=0.4", "-vf", filters, "-c:v", "libx264",
                        "-preset", "ultrafast", "-pix_fmt", "yuv444p", str(source)], check=True)
        out_dir = tmp_path / f"out{len(tags)}"
        out_dir.mkdir()
        info, _, output, _ = segments_round_trip(source, out_dir, crf=10)
        assert probe(str(output)).model_dump(include={"color_range", "color_space", "color_primaries",
                                                      "color_trc"}) == \
            info.model_dump(include={"color_range", "color_space", "color_primaries", "color_trc"})

        def ffmpeg_rgb(path):
            raw = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                                  "-pix_fmt", "rgb24", "pipe:1"], capture_output=True, check=True).stdout
            return np.frombuffer(raw, np.uint8).reshape(-1, 47, 85, 3)

        source_rgb, output_rgb = ffmpeg_rgb(source), ffmpeg_rgb(output)
        assert source_rgb.shape == output_rgb.shape
        assert psnr(output_rgb, source_rgb) > 36, tags
        assert abs(float(output_rgb.mean()) - float(source_rgb.mean())) < 0.75, tags


def test_anamorphic_pixels_keep_their_shape(tmp_path):
    source = tmp_path / "dvd.mkv"
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=72x48:rate=25:duration=0.4",
                    "-vf", "setsar=32/27", "-c:v", "libx264", "-preset", "ultrafast", str(source)], check=True)
    info, _, output, _ = segments_round_trip(source, tmp_path)
    assert info.sample_aspect_ratio == probe(str(output)).sample_aspect_ratio == "32/27"
    with av.open(str(output)) as container:
        assert container.streams.video[0].display_aspect_ratio == Fraction(16, 9)


def test_output_container_rule(make_clip, tmp_path):
    mp4 = probe(str(make_clip("a.mp4", frames=3)))
    assert output_extension(mp4) == ".mp4"
    assert output_extension(probe(str(make_clip("a.mov", frames=3)))) == ".mov"
    assert output_extension(probe(str(make_clip("a.mkv", frames=3)))) == ".mkv"
    assert output_extension(mp4.model_copy(update={"extension": ".m4v"})) == ".mp4"
    assert output_extension(mp4.model_copy(update={"container": "matroska,webm", "extension": ".webm"})) == ".mkv"
    assert output_extension(mp4.model_copy(update={"subtitle_codecs": ("hdmv_pgs_subtitle",)})) == ".mkv"
    names = {"a/b.MP4": ".mp4", "s3://bucket/x.m4v": ".mp4", "c.mov": ".mov", "d.mkv": ".mkv", "e.webm": ".mkv",
             "f.avi": ".mkv", "g.flv": ".mkv", "h.ts": ".mkv"}
    assert {name: output_extension_for(name) for name in names} == names
    # An AVI (decode-order timestamps, B-frames, MP3 audio) comes out as Matroska.
    avi = tmp_path / "b.avi"
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-i", str(make_clip("b.mp4", frames=30, preset="medium")),
                    "-c:v", "copy", "-c:a", "libmp3lame", str(avi)], check=True)
    out_dir = tmp_path / "avi-out"
    out_dir.mkdir()
    info, _, output, _ = segments_round_trip(avi, out_dir)
    assert output.suffix == ".mkv" and probe(str(output)).num_frames == info.num_frames == 30
    assert stream_packets(output, "audio") == stream_packets(avi, "audio")


def test_nothing_appears_under_a_final_name_until_complete(make_clip, tmp_path):
    source = make_clip("c.mp4", frames=6)
    info, pts = inspect(str(source))
    frames = decode(str(source), 0, 6, info=info, timestamps=pts)
    segment = tmp_path / "seg.mp4"
    with SegmentEncoder(segment, info) as encoder:
        for index in range(6):
            encoder.write(int(pts[index]), frames[index])
            assert not segment.exists()
    assert segment.exists()

    broken = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError):
        with SegmentEncoder(broken, info) as encoder:
            encoder.write(int(pts[0]), frames[0])
            raise RuntimeError("remover crashed")
    with pytest.raises(ValueError):
        with SegmentEncoder(broken, info) as encoder:
            encoder.write(0, frames[0][:, :-2])  # wrong size
    with pytest.raises(MediaError, match="segments hold 6 frames, the source has 7"):
        mux([segment], str(source), str(tmp_path / "out.mp4"), info.model_copy(update={"num_frames": 7}))
    with pytest.raises(MediaError, match="segment overlaps the previous one"):
        mux([segment, segment], str(source), str(tmp_path / "out.mp4"), info.model_copy(update={"num_frames": 12}))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["c.mp4", "seg.mp4"]


def test_remote_source_segments_and_output(make_clip, s3_server, s3_bucket, tmp_path):
    options = s3_server.storage_options()
    fs = s3_server.filesystem()
    local = make_clip("c.mkv", frames=12, **MKV_STREAMS)
    source = f"{s3_bucket}/in/c.mkv"
    fs.put_file(str(local), source)
    info, pts = inspect(source, storage_options=options)
    segments = [f"{s3_bucket}/staging/seg-0.mp4", f"{s3_bucket}/staging/seg-1.mp4"]
    for uri, (start, stop) in zip(segments, [(0, 5), (5, 12)]):
        with SegmentEncoder(uri, info, storage_options=options) as encoder:
            for frame in iter_frames(source, start, stop, info=info, timestamps=pts, storage_options=options):
                encoder.write(frame.pts, frame.rgb_hwc_u8)
    output = f"{s3_bucket}/out/c{output_extension(info)}"
    mux(segments, source, output, info, storage_options=options)
    fetched = tmp_path / "fetched.mkv"
    fs.get_file(output, str(fetched))
    assert probe(str(fetched)).num_frames == 12
    assert video_pts_seconds(fetched) == video_pts_seconds(local)
    assert stream_packets(fetched, "audio") == stream_packets(local, "audio")
    assert chapters(fetched) == chapters(local)


def test_comparison_video(make_clip, tmp_path):
    source = make_clip("c.mp4", frames=10, rotation=90)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    info, source_thwc_u8, output, _ = segments_round_trip(source, out_dir)
    comparison = tmp_path / "side_by_side.mp4"
    write_comparison(str(source), str(output), str(comparison))
    side = probe(str(comparison))
    assert (side.width, side.height, side.num_frames, side.rotation) == (2 * info.width, info.height, 10, 0)
    assert video_pts_seconds(comparison) == video_pts_seconds(source)
    assert stream_packets(comparison, "audio") == stream_packets(source, "audio")
    left_thwc_u8 = decode(str(comparison), 0, 10)[:, :, :info.width]
    assert psnr(left_thwc_u8, source_thwc_u8) > 20


def test_a_repeated_source_pts_stays_a_valid_stream(make_clip, tmp_path):
    """Two frames with one pts (a broken muxer upstream): both are kept, in order; the
    second is written one tick later so that the output stream stays valid."""
    source = tmp_path / "dup.mkv"
    with av.open(str(make_clip("u.mp4", frames=12, gop=4))) as reader, \
            av.open(str(source), "w", format="matroska") as writer:
        stream_out = writer.add_stream_from_template(reader.streams.video[0])
        packets = [packet for packet in reader.demux(video=0) if packet.size]
        source_pts = [packet.pts for packet in packets]
        for number, packet in enumerate(packets):
            if number == 5:  # no B-frames: decode order is presentation order
                packet.pts = packet.dts = source_pts[4]
            packet.stream = stream_out
            writer.mux(packet)
    info, stamped_thwc_u8, output, _ = segments_round_trip(source, tmp_path, boundaries=[0, 5, 12], stamp=True)
    _, source_pts = inspect(str(source))
    out_info, out_pts = inspect(str(output))
    assert source_pts[4] == source_pts[5] and out_info.num_frames == 12
    assert out_pts.tolist() == source_pts.tolist()[:5] + [source_pts[5] + 1] + source_pts.tolist()[6:]
    output_thwc_u8 = decode(str(output), 0, 12, info=out_info, timestamps=out_pts)
    assert [read_index(frame) for frame in output_thwc_u8] == list(range(12))


# ---- frames encoded from the decoder's own YUV ----------------------------------------

def stored_planes(path) -> list[list[np.ndarray]]:
    """Every frame's planes as stored (plain PyAV, no conversion), presentation order."""
    with av.open(str(path)) as container:
        return [[np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width].copy()
                 for plane in frame.planes] for frame in container.decode(video=0)]


def planes_equal(a: list[list[np.ndarray]], b: list[list[np.ndarray]], plane: int) -> bool:
    return len(a) == len(b) and all(np.array_equal(x[plane], y[plane]) for x, y in zip(a, b))


def encode_losslessly(source, info, pts, path, from_source: bool) -> None:
    """Every frame of ``source`` at CRF 0, from the decoder's YUV (``write_source``) or
    through RGB (``write``)."""
    with SegmentEncoder(path, info, crf=0, preset="ultrafast") as encoder:
        for frame in iter_frames(str(source), 0, info.num_frames, info=info, timestamps=pts):
            if from_source:
                encoder.write_source(frame)
            else:
                encoder.write(frame.pts, frame.rgb_hwc_u8)


@pytest.mark.parametrize("name, fields", [
    ("bframes-rot90.mp4", dict(frames=12, preset="medium", gop=5, rotation=90)),
    ("odd-444.mkv", dict(frames=6, width=85, height=47)),
    ("full-range.mp4", dict(frames=6, pix_fmt="yuvj420p")),
])
def test_untouched_frames_are_encoded_from_the_decoders_yuv(name, fields, make_clip, tmp_path):
    """Losslessly encoded (CRF 0), an untouched frame comes out with exactly the source's
    YUV samples; the RGB round trip it replaces cannot do that even at CRF 0."""
    source = make_clip(name, **fields)
    info, pts = inspect(str(source))

    def encode(path, from_source: bool):
        encode_losslessly(source, info, pts, path, from_source)
        return stored_planes(path)

    source_planes = stored_planes(source)
    direct = encode(tmp_path / "direct.mp4", from_source=True)
    assert all(planes_equal(direct, source_planes, plane) for plane in range(3))
    out_info = probe(str(tmp_path / "direct.mp4"))
    assert (out_info.width, out_info.height, out_info.rotation) == (info.width, info.height, info.rotation)
    if info.color_range == "pc":  # full-range samples stay tagged full range
        assert out_info.color_range == "pc"
    through_rgb = encode(tmp_path / "rgb.mp4", from_source=False)
    assert not planes_equal(through_rgb, source_planes, 0)


def test_a_layout_x264_lacks_is_resampled_without_rgb(tmp_path):
    """4:4:0 in (no x264 profile codes it), 4:4:4 out: luma passes exactly, chroma is the
    source's upsampled vertically (closer to it than what the RGB round trip gives)."""
    source = tmp_path / "440.mkv"
    subprocess.run([ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=0.24",
                    "-pix_fmt", "yuv440p", "-c:v", "ffv1", str(source)], check=True)
    info, pts = inspect(str(source))
    assert info.pix_fmt == "yuv440p"

    def chroma_error(path, from_source: bool) -> float:
        encode_losslessly(source, info, pts, path, from_source)
        out_planes = stored_planes(path)
        if from_source:
            assert planes_equal(out_planes, stored_planes(source), 0)
        errors = [np.abs(out[plane].astype(int) - np.repeat(src[plane], 2, axis=0)).mean()
                  for out, src in zip(out_planes, stored_planes(source)) for plane in (1, 2)]
        return float(np.mean(errors))

    direct = chroma_error(tmp_path / "direct.mp4", from_source=True)
    assert probe(str(tmp_path / "direct.mp4")).pix_fmt == "yuv444p"
    assert direct < 4 and direct < chroma_error(tmp_path / "rgb.mp4", from_source=False)


def test_coded_box_inverts_the_display_rotation():
    from clear_ray.media.encode import coded_box

    stored_hw = np.arange(7 * 10).reshape(7, 10)
    for turns in range(4):
        shown_hw = np.rot90(stored_hw, turns)
        for box in [(0, 1, 0, 1), (1, 4, 2, 7), (0, shown_hw.shape[0], 3, shown_hw.shape[1])]:
            y0, y1, x0, x1 = box
            cy0, cy1, cx0, cx1 = coded_box(box, turns, *stored_hw.shape)
            assert np.array_equal(np.rot90(stored_hw[cy0:cy1, cx0:cx1], turns), shown_hw[y0:y1, x0:x1])


@pytest.mark.parametrize("rotation", [0, 90])
def test_a_patch_replaces_exactly_the_samples_it_touches(rotation, make_clip, tmp_path):
    """write_patched: luma pixels the mask touches, and chroma samples covering a touched
    pixel, are what converting the whole patched RGB frame gives; every other sample is
    the source's, in every frame. The patch moves from frame to frame, so had it been
    written into a picture the decoder still uses as a reference, later frames would show
    it where they are untouched."""
    source = make_clip("p.mp4", frames=16, preset="medium", gop=8, rotation=rotation)
    info, pts = inspect(str(source))
    rng = np.random.default_rng(3)
    turns = rotation // 90
    patched, whole = tmp_path / "patched.mp4", tmp_path / "whole.mp4"
    stored_touched = []
    with SegmentEncoder(patched, info, crf=0, preset="ultrafast") as by_patch, \
            SegmentEncoder(whole, info, crf=0, preset="ultrafast") as by_frame:
        # (threads=1: a frame-threaded decoder is ahead of its output and would hide a write
        # into a reference picture.)
        for frame in iter_frames(str(source), 0, info.num_frames, info=info, timestamps=pts, threads=1):
            step = frame.index % 4
            box = (5 + 3 * step, 30 + 3 * step, 3 + 2 * step, 40)  # odd edges: the encoder aligns them itself
            touched_hw = rng.random((box[1] - box[0], box[3] - box[2])) < 0.3
            touched_hw[0, 0] = touched_hw[-1, -1] = True
            patch_hwc_u8 = rng.integers(0, 256, (*touched_hw.shape, 3), dtype=np.uint8)
            full_hwc_u8 = frame.rgb_hwc_u8.copy()
            np.copyto(full_hwc_u8[box[0]:box[1], box[2]:box[3]], patch_hwc_u8, where=touched_hw[..., None])
            by_frame.write(frame.pts, full_hwc_u8)
            by_patch.write_patched(frame, box, patch_hwc_u8, touched_hw)
            display_touched_hw = np.zeros((info.height, info.width), bool)
            display_touched_hw[box[0]:box[1], box[2]:box[3]] = touched_hw
            stored_touched.append(np.rot90(display_touched_hw, -turns))
    source_planes, patched_planes, whole_planes = stored_planes(source), stored_planes(patched), stored_planes(whole)
    assert len(patched_planes) == len(source_planes) == info.num_frames
    for src, out, reference, touched_hw in zip(source_planes, patched_planes, whole_planes, stored_touched):
        chroma_touched_hw = touched_hw.reshape(info.coded_height // 2, 2, info.coded_width // 2, 2).any(axis=(1, 3))
        for plane, touched in ((0, touched_hw), (1, chroma_touched_hw), (2, chroma_touched_hw)):
            assert np.array_equal(out[plane][~touched], src[plane][~touched])
            assert np.array_equal(out[plane][touched], reference[plane][touched])
