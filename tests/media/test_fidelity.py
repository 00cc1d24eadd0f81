"""Media fidelity on odd but valid sources: 10-bit H.264 (High 10), HEVC Main 10 with
PQ/BT.2020 tags and HDR10 side data, ProRes 422 HQ 10-bit with PCM audio, 4:4:4 and
4:2:2 H.264, VP9 + Opus WebM. Through the real job (`clear-ray remove --backend identity`
at CRF 0) every one comes back sample-exact: frames, timestamps, size, pixel format,
decoded audio samples, colour tags and HDR side data; the same job run again under other
thread timing gives byte-identical files; Opus moved into MP4 keeps its pre-skip and end
trim, AAC its edit list."""

from __future__ import annotations

import struct
import subprocess
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from clear_ray.media import SegmentEncoder, inspect, iter_frames, mux, output_extension, probe
from clear_ray.media.pictures import plane_arrays
from clear_ray.testing.clips import ffmpeg_exe

pytestmark = pytest.mark.timeout(600)

MASTERING = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
_VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=25:duration=1"]
_AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.4"]
_X264 = ["-c:v", "libx264", "-preset", "ultrafast"]
# name -> (ffmpeg output arguments, pixel format, output profile at CRF > 0)
SOURCES = {
    "high10.mp4": ([*_X264, "-pix_fmt", "yuv420p10le", "-c:a", "aac"], "yuv420p10le", "High 10"),
    "hdr10.mp4": (["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p10le", "-tag:v", "hvc1",
                   "-x265-params", "log-level=error:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:"
                   f"hdr10=1:master-display={MASTERING}:max-cll=1000,400", "-c:a", "aac"], "yuv420p10le", "High 10"),
    "prores422hq.mov": (["-c:v", "prores_ks", "-profile:v", "3", "-pix_fmt", "yuv422p10le", "-c:a", "pcm_s24le"],
                        "yuv422p10le", "High 4:2:2"),
    "chroma444.mp4": ([*_X264, "-pix_fmt", "yuv444p", "-c:a", "aac"], "yuv444p", "High 4:4:4 Predictive"),
    "chroma422.mp4": ([*_X264, "-pix_fmt", "yuv422p", "-c:a", "aac"], "yuv422p", "High 4:2:2"),
    "vp9opus.webm": (["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus",
                      "-b:a", "32k"], "yuv420p", "High"),
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    """The six sources, 64x48, 10 frames, 0.4 s of 48 kHz audio, in one directory."""
    src = tmp_path_factory.mktemp("fidelity") / "src"
    src.mkdir()
    for name, (arguments, _, _) in SOURCES.items():
        subprocess.run([ffmpeg_exe(), "-y", "-v", "error", *_VIDEO, *_AUDIO, "-frames:v", "10", *arguments,
                        str(src / name)], check=True)
    return src


# -- what a file holds --------------------------------------------------------------------

def video_planes(path) -> list[tuple[Fraction, str, list[np.ndarray]]]:
    """Every frame: (time in seconds, pixel format, stored planes), presentation order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [(frame.pts * stream.time_base, frame.format.name, [p.copy() for p in plane_arrays(frame)])
                for frame in container.decode(stream)]


def audio_samples(path) -> np.ndarray:
    """All decoded samples of the first audio stream (priming and trimming applied as the
    demuxer says), float64 so that integer PCM compares exactly too."""
    with av.open(str(path)) as container:
        return np.concatenate([frame.to_ndarray().astype(np.float64).reshape(len(frame.layout.channels), -1)
                               for frame in container.decode(audio=0)], axis=1)


def hdr_side_data(path) -> dict[str, bytes]:
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    return {sd.type.name: bytes(sd) for sd in frame.side_data
            if sd.type.name in ("MASTERING_DISPLAY_METADATA", "CONTENT_LIGHT_LEVEL")}


def mp4_edit_lists(path) -> dict[str, list[tuple[Fraction, int]]]:
    """Per track handler ("vide", "soun"): its edit list as (duration in seconds, media
    time in the track's own time scale), read from the boxes themselves."""
    data = Path(path).read_bytes()

    def boxes(start: int, end: int):
        while start + 8 <= end:
            size, kind = struct.unpack_from(">I4s", data, start)
            header = 8
            if size == 1:
                size, header = struct.unpack_from(">Q", data, start + 8)[0], 16
            yield kind.decode("latin-1"), start + header, start + (size or end - start)
            start += size or end - start

    def child(start: int, end: int, kind: str):
        return next(((s, e) for k, s, e in boxes(start, end) if k == kind), None)

    moov = child(0, len(data), "moov")
    mvhd = child(*moov, "mvhd")
    movie_scale = struct.unpack_from(">I", data, mvhd[0] + (20 if data[mvhd[0]] == 1 else 12))[0]
    tracks = {}
    for kind, start, end in boxes(*moov):
        if kind != "trak":
            continue
        mdia = child(start, end, "mdia")
        handler = data[child(*mdia, "hdlr")[0] + 8:child(*mdia, "hdlr")[0] + 12].decode()
        entries = []
        edts = child(start, end, "edts")
        if edts:
            elst = child(*edts, "elst")
            version, count = data[elst[0]], struct.unpack_from(">I", data, elst[0] + 4)[0]
            for number in range(count):
                if version == 1:
                    duration, media_time = struct.unpack_from(">Qq", data, elst[0] + 8 + 20 * number)
                else:
                    duration, media_time = struct.unpack_from(">Ii", data, elst[0] + 8 + 12 * number)
                entries.append((Fraction(duration, movie_scale), media_time))
        tracks[handler] = entries
    return tracks


# -- probing ------------------------------------------------------------------------------

def test_deep_chroma_and_hdr_sources_are_described_not_refused(sources):
    for name, (_, pix_fmt, _) in SOURCES.items():
        info = probe(str(sources / name))
        assert (info.pix_fmt, info.num_frames, info.width, info.height) == (pix_fmt, 10, 64, 48), name
        assert info.bit_depth == (10 if "10" in pix_fmt else 8), name
    hdr = probe(str(sources / "hdr10.mp4"))
    assert (hdr.color_primaries, hdr.color_trc, hdr.color_space) == ("bt2020", "smpte2084", "bt2020nc")
    assert (hdr.mastering_display, hdr.content_light_level) == (MASTERING, "1000,400")


def test_segments_keep_layout_and_take_the_matching_x264_profile(sources, tmp_path):
    """At CRF > 0 each layout gets its own profile (at CRF 0 x264 codes every layout in
    High 4:4:4 Predictive, the only lossless profile)."""
    for name, (_, pix_fmt, profile) in SOURCES.items():
        info, pts = inspect(str(sources / name))
        segment = tmp_path / f"{name}.mp4"
        with SegmentEncoder(segment, info, crf=17, preset="medium") as encoder:
            for frame in iter_frames(str(sources / name), 0, info.num_frames, info=info, timestamps=pts):
                encoder.write_source(frame)
        with av.open(str(segment)) as container:
            context = container.streams.video[0].codec_context
            assert (context.pix_fmt, context.profile) == (pix_fmt, profile), name


# -- the real job, twice ----------------------------------------------------------------

def remove_config(src: Path, dst: Path, **overrides):
    from clear_ray.config import RemoveJobConfig, load_config

    settings = {"src": str(src), "dst": str(dst), "remover.backend": "identity", "output.crf": 0,
                "output.preset": "ultrafast", "chunking.chunk_size": 5, "chunking.overlap": 2,
                "chunking.segment_frames": 4, "ray.max_actors": 1, "quiet": True, **overrides}
    return load_config(RemoveJobConfig, overrides=settings, env={})


def run_job(config) -> dict[str, str]:
    from clear_ray.pipeline import run_remove_job

    summary = run_remove_job(config)
    assert summary.exit_code == 0, [(row.rel_path, row.error) for row in summary.rows]
    return {row.rel_path: row.output_uri for row in summary.rows}


class CpuHog:
    """Busy threads in the driver: other thread timing for the second run."""

    def __init__(self, threads: int = 2):
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._spin, daemon=True) for _ in range(threads)]

    def _spin(self) -> None:
        while not self._stop.is_set():
            sum(range(10_000))

    def __enter__(self) -> "CpuHog":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.mark.slow
def test_identity_at_crf0_through_the_job_is_sample_exact_and_byte_reproducible(ray_cluster, sources, tmp_path):
    outputs = run_job(remove_config(sources, tmp_path / "dst"))
    assert set(outputs) == set(SOURCES)
    for name in SOURCES:
        source, output = sources / name, Path(outputs[name])
        assert output.suffix == output_extension(probe(str(source))), name
        before, after = video_planes(source), video_planes(output)
        assert len(after) == len(before) == 10, name
        for (t_in, fmt_in, planes_in), (t_out, fmt_out, planes_out) in zip(before, after):
            assert (t_out, fmt_out) == (t_in, fmt_in), name
            assert all(np.array_equal(a, b) for a, b in zip(planes_in, planes_out)), (name, t_in)
        info_in, info_out = probe(str(source)), probe(str(output))
        assert (info_out.width, info_out.height, info_out.duration_s) == (info_in.width, info_in.height,
                                                                          info_in.duration_s), name
        # (Limited range is what an untagged YUV stream means: H.264 does not signal it alone.)
        assert (info_out.color_primaries, info_out.color_trc, info_out.color_space, info_out.color_range or "tv") == \
            (info_in.color_primaries, info_in.color_trc, info_in.color_space, info_in.color_range or "tv"), name
        assert hdr_side_data(output) == hdr_side_data(source), name
        assert np.array_equal(audio_samples(output), audio_samples(source)), name
        if output.suffix in (".mp4", ".mov"):  # AAC priming (edit list) and PCM kept as they were
            assert mp4_edit_lists(output)["soun"] == mp4_edit_lists(source)["soun"], name
    assert len(hdr_side_data(sources / "hdr10.mp4")) == 2  # the comparison above compared something

    # The same job again, other worker count, busy driver threads: the same bytes.
    with CpuHog():
        again = run_job(remove_config(sources, tmp_path / "dst-again", **{"ray.max_actors": 2}))
    for name in SOURCES:
        assert Path(again[name]).read_bytes() == Path(outputs[name]).read_bytes(), name


# -- audio priming across containers ------------------------------------------------------

def test_opus_moved_from_webm_into_mp4_keeps_pre_skip_and_end_trim(sources, tmp_path):
    source = sources / "vp9opus.webm"
    info, pts = inspect(str(source))
    segment = tmp_path / "segment.mp4"
    with SegmentEncoder(segment, info, crf=0, preset="ultrafast") as encoder:
        for frame in iter_frames(str(source), 0, info.num_frames, info=info, timestamps=pts):
            encoder.write_source(frame)
    out = tmp_path / "moved.mp4"
    mux([segment], str(source), str(out), info)

    with av.open(str(source)) as container:
        head = bytes(container.streams.audio[0].codec_context.extradata)
    pre_skip = int.from_bytes(head[10:12], "little")
    assert head[:8] == b"OpusHead" and pre_skip > 0
    samples_in = audio_samples(source)  # Matroska: pre-skip and DiscardPadding applied
    (duration, media_time), = mp4_edit_lists(out)["soun"]
    assert media_time == pre_skip  # the edit list starts after the priming, to the sample
    assert duration == Fraction(samples_in.shape[1], 48000)  # and ends where the source's trim ends
    samples_out = audio_samples(out)  # FFmpeg's MP4 reader applies the start (not the end) of an edit
    assert np.array_equal(samples_out[:, :samples_in.shape[1]], samples_in)
    with av.open(str(out)) as container:
        assert bytes(container.streams.audio[0].codec_context.extradata) == head


def test_the_compositor_blends_in_the_sources_ten_bit_samples(sources, tmp_path):
    """A grey band (alpha 1) with a soft edge row (alpha 0.5) over a 10-bit 4:2:0 source,
    losslessly encoded: untouched samples are the source's, the band is grey at 10 bits,
    and the soft row is the 10-bit mean of source and grey (not an 8-bit RGB round trip)."""
    source = sources / "high10.mp4"
    info, pts = inspect(str(source))
    box = (10, 22, 0, info.width)  # rows 10..19 alpha 1, rows 20, 21 alpha 0.5 (one chroma row)
    alpha_hw = np.ones((12, info.width), np.float32)
    alpha_hw[10:] = 0.5
    grey_hwc = np.full((12, info.width, 3), 128.0, np.float32)
    out = tmp_path / "blended.mp4"
    with SegmentEncoder(out, info, crf=0, preset="ultrafast") as encoder:
        for frame in iter_frames(str(source), 0, info.num_frames, info=info, timestamps=pts):
            encoder.write_blended(frame, box, alpha_hw, grey_hwc)
    for (_, fmt, planes_in), (_, fmt_out, planes_out) in zip(video_planes(source), video_planes(out)):
        assert fmt == fmt_out == "yuv420p10le"
        luma_in, luma_out = planes_in[0].astype(int), planes_out[0].astype(int)
        assert np.array_equal(luma_out[:10], luma_in[:10]) and np.array_equal(luma_out[22:], luma_in[22:])
        grey_y = luma_out[10:20]
        assert grey_y.min() == grey_y.max() and abs(int(grey_y[0, 0]) - round(64 + 876 * 128 / 255)) <= 1
        assert np.array_equal(luma_out[20:22], np.rint((luma_in[20:22] + grey_y[0, 0]) / 2))
        assert np.any(luma_out[20:22] % 4)  # 10-bit values an 8-bit path could not give
        for plane in (1, 2):  # chroma rows 5..9 grey, row 10 half, the rest the source's
            chroma_in, chroma_out = planes_in[plane].astype(int), planes_out[plane].astype(int)
            assert np.array_equal(chroma_out[:5], chroma_in[:5]) and np.array_equal(chroma_out[11:], chroma_in[11:])
            grey_c = chroma_out[5:10]
            assert grey_c.min() == grey_c.max() and abs(int(grey_c[0, 0]) - 512) <= 1
            assert np.array_equal(chroma_out[10], np.rint((chroma_in[10] + grey_c[0, 0]) / 2))


class _Band:
    """A soft-edged grey band over every frame (so that every frame is blended)."""

    name, wants_gpu = "band", False

    def __init__(self, config=None, device="cpu"):
        pass

    def fingerprint(self) -> str:
        return "band-v1"

    def remove(self, frames_thwc_u8: np.ndarray):
        from clear_ray.removers.base import RemovalResult

        mask_thw_f32 = np.zeros(frames_thwc_u8.shape[:3], np.float32)
        mask_thw_f32[:, 20:30] = 1.0
        mask_thw_f32[:, 19] = mask_thw_f32[:, 30] = 0.5
        return RemovalResult(np.full_like(frames_thwc_u8, 128), mask_thw_f32)


def test_segments_are_byte_identical_under_other_thread_timing(tmp_path):
    """The stitch's decode-ahead thread at other depths, and a busy process: the same
    segment bytes. (A width that is not a whole number of macroblocks, at preset medium:
    with x264's macroblock tree on, about one run in eight of this clip gave other bytes.)"""
    from clear_ray.chunking import blend_weights, plan_chunks, plan_segments
    from clear_ray.config import RemoveJobConfig, load_config
    from clear_ray.pipeline.layout import VideoStaging
    from clear_ray.pipeline.tasks import ENCODER_THREADS  # as the job encodes: x264's bytes depend on it
    from clear_ray.staging import read_staged_chunk, staged_chunk_uri
    import clear_ray.stitch as stitch

    from clear_ray.testing.clips import ClipSpec, write_clip
    from clear_ray.testing.stages import stage_chunks

    source = str(write_clip(tmp_path / "odd.mp4", ClipSpec(frames=40, width=100, height=60, audio_tracks=0)))
    info, pts = inspect(source)
    chunks = plan_chunks(info.num_frames, 13, 4)
    config = load_config(RemoveJobConfig, env={}, overrides={
        "src": source, "dst": "unused", "remover.plugin": "tests.media.test_fidelity:_Band",
        "chunking.chunk_size": 13, "chunking.overlap": 4})
    staging = VideoStaging(str(tmp_path / "staged"))
    stage_chunks(config, source, staging.root)  # the job's own plan and remove stages
    staged = {c.index: read_staged_chunk(staged_chunk_uri(staging.chunks_dir, c.index)) for c in chunks}
    weights = blend_weights(chunks, info.num_frames)
    segment = plan_segments(chunks, info.num_frames, 10)[1]  # one from the middle of the video

    def encode(path: Path, depth: int) -> bytes:
        with SegmentEncoder(path, info, crf=17, preset="medium", threads=ENCODER_THREADS) as encoder:
            stitch.stitch_segment(source, info, segment, staged, weights, encoder, frame_pts=pts, decode_threads=1)
        return path.read_bytes()

    first = encode(tmp_path / "first.mp4", stitch.PREFETCH_FRAMES)
    default_depth = stitch.PREFETCH_FRAMES
    try:
        for run, depth in enumerate((1, 8, 2)):
            stitch.PREFETCH_FRAMES = depth
            with CpuHog(threads=run + 1):
                assert encode(tmp_path / f"again{run}.mp4", depth) == first, run
    finally:
        stitch.PREFETCH_FRAMES = default_depth
