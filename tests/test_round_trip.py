"""End to end on real files through the job's own stages, in one process: plan -> remove
(decode chunk, remover, stage) -> stitch segments -> mux (clear_ray.testing.stages).

Generated clips cover the factors pairwise (every feasible pair of values appears in
some case; a test below checks that claim), the frame-index test proves every output
frame is the right source frame through overlaps, and natural footage keeps >= 40 dB.
"""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from clear_ray.chunking import plan_chunks, plan_segments
from clear_ray.config import RemoveJobConfig, load_config
from clear_ray.media import decode, frame_timestamps, output_extension, probe
from clear_ray.pipeline.layout import VideoStaging
from clear_ray.removers.base import RemovalResult
from clear_ray.staging import list_staged_chunks
from clear_ray.testing.clips import ClipSpec, ffmpeg_exe, write_clip
from clear_ray.testing.stages import run_stages

IDENTITY = None  # the identity backend; else a "module:Class" remover plugin


def run_pipeline(source: Path, work: Path, plugin: str | None, chunk_size: int, overlap: int, *,
                 crf: int = 17, preset: str = "ultrafast") -> tuple[Path, object]:
    """The job's stages in this process; staged chunks are deleted as soon as they are released.
    One segment per chunk start: many independently encoded pieces, joined by the mux."""
    config = load_config(RemoveJobConfig, env={}, overrides={
        "src": str(source), "dst": str(work / "dst"), "remover.backend": "identity", "remover.plugin": plugin,
        "chunking.chunk_size": chunk_size, "chunking.overlap": overlap, "chunking.segment_frames": 1,
        "output.crf": crf, "output.preset": preset})
    staging_root = str(work / "staging")
    out = work / f"out{output_extension(probe(str(source)))}"
    report = run_stages(config, str(source), str(out), staging_root)
    assert report.reused_chunks == 0
    assert list_staged_chunks(VideoStaging(staging_root).chunks_dir) == {}  # every chunk released
    return out, report


# --- generated clips, pairwise --------------------------------------------------------

FRAMES = (1, 2, 80, 81, 82, 200, 1000)
RATES = ("24", "25", "30000/1001", "60", "vfr")
SIZES = ("64x48", "85x47", "854x480")
ROTATIONS = (0, 90)
STREAMS = ("none", "aac", "mkv-rich")  # mkv-rich: 2 AAC tracks + srt subtitles + chapters


def _feasible(case: tuple) -> bool:
    frames, _, size, _, _ = case
    return size != "854x480" or frames <= 2  # the large size only with a few frames


CASES = [  # (frames, rate, size, rotation, streams): a pairwise covering array
    (1, "24", "64x48", 0, "none"), (1, "25", "85x47", 90, "aac"), (1, "30000/1001", "854x480", 0, "mkv-rich"),
    (1, "60", "854x480", 90, "none"), (1, "vfr", "854x480", 0, "aac"),
    (2, "24", "854x480", 90, "mkv-rich"), (2, "25", "854x480", 0, "none"), (2, "30000/1001", "85x47", 0, "none"),
    (2, "60", "64x48", 0, "aac"), (2, "vfr", "64x48", 90, "none"),
    (80, "24", "64x48", 0, "aac"), (80, "25", "64x48", 90, "none"), (80, "30000/1001", "85x47", 0, "mkv-rich"),
    (80, "60", "64x48", 0, "none"), (80, "vfr", "64x48", 90, "none"),
    (81, "24", "64x48", 0, "aac"), (81, "25", "64x48", 0, "mkv-rich"), (81, "30000/1001", "64x48", 0, "none"),
    (81, "60", "85x47", 90, "none"), (81, "vfr", "64x48", 0, "none"),
    (82, "24", "85x47", 0, "aac"), (82, "25", "64x48", 90, "mkv-rich"), (82, "30000/1001", "64x48", 90, "none"),
    (82, "60", "64x48", 0, "none"), (82, "vfr", "64x48", 0, "aac"),
    (200, "24", "64x48", 0, "none"), (200, "25", "64x48", 0, "none"), (200, "30000/1001", "64x48", 90, "aac"),
    (200, "60", "64x48", 0, "none"), (200, "vfr", "85x47", 0, "mkv-rich"),
    (1000, "24", "85x47", 90, "none"), (1000, "25", "64x48", 0, "aac"), (1000, "30000/1001", "64x48", 0, "none"),
    (1000, "60", "64x48", 0, "mkv-rich"), (1000, "vfr", "64x48", 0, "none"),
]


def test_cases_cover_every_feasible_pair():
    factors = (FRAMES, RATES, SIZES, ROTATIONS, STREAMS)
    feasible = [c for c in itertools.product(*factors) if _feasible(c)]
    assert all(_feasible(c) for c in CASES)
    for i, j in itertools.combinations(range(len(factors)), 2):
        wanted = {(c[i], c[j]) for c in feasible}
        covered = {(c[i], c[j]) for c in CASES}
        assert wanted <= covered, f"factors {i},{j} miss {sorted(wanted - covered, key=str)}"


def _chunking_for(frames: int, case_index: int) -> tuple[int, int]:
    # Small windows exercise many chunks cheaply; the default 81/16 runs too.
    if frames >= 1000:
        return (81, 16) if case_index % 2 else (21, 4)
    if frames >= 80:
        return (81, 16) if case_index % 3 == 0 else (9, 4)
    return 9, 4


def _spec(frames: int, rate: str, size: str, rotation: int, streams: str) -> ClipSpec:
    width, height = map(int, size.split("x"))
    return ClipSpec(frames=frames, fps="25" if rate == "vfr" else rate, variable_frame_rate=rate == "vfr",
                    width=width, height=height, rotation=rotation,
                    audio_tracks={"none": 0, "aac": 1, "mkv-rich": 2}[streams],
                    subtitle_track=streams == "mkv-rich", chapters=streams == "mkv-rich",
                    container="mkv" if streams == "mkv-rich" else "mp4")


def _other_streams(uri: Path) -> tuple[list[tuple[str, str, bytes]], list[tuple]]:
    """(type, codec, all packet bytes) per audio/subtitle stream, and the chapters."""
    import av

    with av.open(str(uri)) as container:
        streams = [s for s in container.streams if s.type in ("audio", "subtitle")]
        payload = {s.index: bytearray() for s in streams}
        if streams:
            for packet in container.demux(streams):
                if packet.size:
                    payload[packet.stream_index] += bytes(packet)
        chapters = [(c["start"] * c["time_base"], c["end"] * c["time_base"], c["metadata"].get("title"))
                    for c in container.chapters()]
        return [(s.type, s.codec_context.name, bytes(payload[s.index])) for s in streams], chapters


def _luma_psnr(a: np.ndarray, b: np.ndarray) -> float:
    # Luma: re-subsampling testsrc2's saturated colour edges to 4:2:0 costs ~25 dB of RGB
    # PSNR even losslessly (CRF 0) at 64x48; luma shows whether frames match.
    weights = np.array([0.299, 0.587, 0.114])
    mse = np.mean((a.astype(np.float64) @ weights - b.astype(np.float64) @ weights) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize("case", CASES, ids=["-".join(map(str, c)).replace("/", "_") for c in CASES])
def test_identity_round_trip(case, tmp_path):
    frames = case[0]
    source = write_clip(tmp_path / f"src.{'mkv' if case[4] == 'mkv-rich' else 'mp4'}", _spec(*case))
    chunk_size, overlap = _chunking_for(frames, CASES.index(case))
    out, report = run_pipeline(source, tmp_path, IDENTITY, chunk_size, overlap)

    src_info, out_info = probe(str(source)), probe(str(out))
    assert out.suffix == source.suffix  # the container family is kept
    assert out_info.num_frames == src_info.num_frames == frames == report.num_frames
    assert (out_info.width, out_info.height, out_info.rotation) == (src_info.width, src_info.height, src_info.rotation)
    assert out_info.time_base == src_info.time_base
    assert np.array_equal(frame_timestamps(str(out)), frame_timestamps(str(source)))
    src_streams, src_chapters = _other_streams(source)
    out_streams, out_chapters = _other_streams(out)
    assert [s[:2] for s in out_streams] == [s[:2] for s in src_streams]
    for (kind, codec, src_bytes), (_, _, out_bytes) in zip(src_streams, out_streams):
        assert out_bytes == src_bytes, f"{kind} stream ({codec}) bytes differ"
    assert out_chapters == src_chapters
    # Pixels: identity through CRF 17 stays close to the source on every frame.
    src_frames, out_frames = decode(str(source), 0, frames), decode(str(out), 0, frames)
    worst = min(_luma_psnr(a, b) for a, b in zip(src_frames, out_frames))
    assert worst >= 35, f"worst frame luma PSNR {worst:.1f} dB"
    if frames >= 200:
        # Staging stays bounded: never more than one segment's chunks staged at once.
        segments = plan_segments(plan_chunks(frames, chunk_size, overlap), frames)
        assert report.max_staged_chunks <= max(len(s.chunk_indices) for s in segments) + 1


@pytest.mark.slow
def test_natural_footage_psnr_at_default_crf(natural_clip, tmp_path):
    out, _ = run_pipeline(Path(natural_clip), tmp_path, IDENTITY, 81, 16, preset="medium")
    info = probe(str(natural_clip))
    src_frames, out_frames = decode(str(natural_clip), 0, info.num_frames), decode(str(out), 0, info.num_frames)
    mse = np.mean((src_frames.astype(np.float64) - out_frames.astype(np.float64)) ** 2)
    psnr = 10 * np.log10(255.0 ** 2 / mse)
    print(f"\nbikes.mp4 identity round trip, CRF 17 preset medium: PSNR {psnr:.2f} dB over {info.num_frames} frames")
    assert psnr >= 40.0
    assert np.array_equal(frame_timestamps(str(out)), frame_timestamps(str(natural_clip)))
    assert _other_streams(out) == _other_streams(Path(natural_clip))


# --- frame-index barcodes -------------------------------------------------------------

BLOCK = 16  # pixels per bit: H.264 keeps flat 16x16 blocks at CRF 17
BITS_PER_ROW = 8
SOURCE_ROW, STAMP_ROW = 0, 64  # barcode bands: rows [0, 32) in the source, [64, 96) stamped


def write_barcode_source(path: Path, frames: int, *, vfr: bool) -> Path:
    """A 128x96 H.264 clip whose frame n carries n as a 16-bit barcode in rows [0, 32),
    drawn by ffmpeg itself (geq's N = frame number), optionally with irregular timestamps."""
    bit = f"(floor(X/{BLOCK})+{BITS_PER_ROW}*floor(Y/{BLOCK}))"
    graph = [f"format=gray,geq=lum='if(lt(Y\\,{2 * BLOCK})\\,255*mod(floor(N/pow(2\\,{bit}))\\,2)\\,96)'",
             "format=yuv420p"]
    args = []
    if vfr:
        graph += ["settb=1/90000", "setpts=(N*0.04+mod(N\\,3)*0.013)/TB"]
        args = ["-fps_mode", "vfr", "-enc_time_base", "1/90000"]
    command = [ffmpeg_exe(), "-y", "-v", "error", "-f", "lavfi",
               "-i", f"color=c=black:size=128x96:rate=25:duration={frames / 25 + 1}",
               "-vf", ",".join(graph), *args, "-frames:v", str(frames),
               "-c:v", "libx264", "-preset", "ultrafast", "-g", "12", str(path)]
    subprocess.run(command, check=True, capture_output=True)
    return path


def read_barcode(frame_hwc_u8: np.ndarray, row: int) -> int:
    """The barcode at ``row``; refuses grey blocks (what two different indices blend into)."""
    luma = frame_hwc_u8[row:row + 2 * BLOCK].astype(np.float64).mean(axis=-1)
    blocks = luma.reshape(2, BLOCK, BITS_PER_ROW, BLOCK)[:, 3:-3, :, 3:-3].mean(axis=(1, 3)).ravel()
    if np.any((blocks > 60) & (blocks < 195)):
        raise AssertionError(f"ambiguous barcode block levels {np.round(blocks).tolist()}")
    return int(sum(1 << k for k, level in enumerate(blocks) if level > 127))


def stamp_barcode(frame_hwc_u8: np.ndarray, value: int, row: int) -> None:
    for k in range(2 * BITS_PER_ROW):
        y, x = row + (k // BITS_PER_ROW) * BLOCK, (k % BITS_PER_ROW) * BLOCK
        frame_hwc_u8[y:y + BLOCK, x:x + BLOCK] = 255 if (value >> k) & 1 else 0


class BarcodeStampRemover:
    """Reads each input frame's source barcode and stamps it in the lower band (mask 1
    there only): the output then shows which source frame each chunk frame came from."""

    name: ClassVar[str] = "barcode-stamp"
    wants_gpu: ClassVar[bool] = False

    def __init__(self, config=None, device: str = "cpu"):
        pass

    def fingerprint(self) -> str:
        return "barcode-stamp-v1"

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        stamped_thwc_u8 = frames_thwc_u8.copy()
        mask_thw_f32 = np.zeros(frames_thwc_u8.shape[:3], np.float32)
        for frame_hwc_u8 in stamped_thwc_u8:
            stamp_barcode(frame_hwc_u8, read_barcode(frame_hwc_u8, SOURCE_ROW), STAMP_ROW)
        mask_thw_f32[:, STAMP_ROW:STAMP_ROW + 2 * BLOCK, :] = 1.0
        return RemovalResult(stamped_thwc_u8, mask_thw_f32)


@pytest.mark.parametrize("frames, vfr, chunk_size, overlap", [
    (150, False, 81, 16),  # even spreading: three windows share frames 69..80
    (60, True, 9, 6),  # variable frame rate, every frame in three windows
    (7, False, 9, 4),  # one reflection-padded window
])
def test_every_output_frame_is_its_source_frame(tmp_path, frames, vfr, chunk_size, overlap):
    source = write_barcode_source(tmp_path / "barcode.mp4", frames, vfr=vfr)
    info = probe(str(source))
    assert info.num_frames == frames and info.variable_frame_rate == vfr
    chunks = plan_chunks(frames, chunk_size, overlap)
    if frames > chunk_size:
        assert max(len(s.chunk_indices) for s in plan_segments(chunks, frames)) >= 3
    out, _ = run_pipeline(source, tmp_path, "tests.test_round_trip:BarcodeStampRemover", chunk_size, overlap)

    out_frames = decode(str(out), 0, frames)
    assert len(out_frames) == frames
    assert [read_barcode(f, STAMP_ROW) for f in out_frames] == list(range(frames))
    assert [read_barcode(f, SOURCE_ROW) for f in out_frames] == list(range(frames))
    # Outside the stamped band the output is the untouched source re-encoded.
    assert np.array_equal(frame_timestamps(str(out)), frame_timestamps(str(source)))
    middle_rows = out_frames[:, 2 * BLOCK + 4:STAMP_ROW - 4].astype(int)
    assert np.abs(middle_rows - 96).max() <= 3


# --- untouched frames keep the decoder's YUV ---------------------------------------------

def _stored_planes(path: Path) -> list[list[np.ndarray]]:
    import av

    with av.open(str(path)) as container:
        return [[np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width].copy()
                 for plane in frame.planes] for frame in container.decode(video=0)]


@pytest.mark.parametrize("spec", [
    ClipSpec(frames=30, preset="medium", gop=7, rotation=90),  # B-frames, segments starting mid-GOP
    ClipSpec(frames=12, width=85, height=47, container="mkv", audio_tracks=2, subtitle_track=True),
], ids=["bframes-rot90-mp4", "odd-444-mkv"])
def test_identity_at_crf0_returns_the_sources_yuv_exactly(spec, tmp_path):
    """Frames the compositor leaves untouched reach x264 as the decoder's own YUV: through
    the whole pipeline (chunks, staging, segments, mux) a lossless encode gives back
    every sample of every frame."""
    source = write_clip(tmp_path / f"src.{spec.container}", spec)
    out, _ = run_pipeline(source, tmp_path, IDENTITY, 9, 4, crf=0)
    source_planes, out_planes = _stored_planes(source), _stored_planes(out)
    assert len(out_planes) == len(source_planes) == spec.frames
    for src, got in zip(source_planes, out_planes):
        assert all(np.array_equal(a, b) for a, b in zip(src, got))
