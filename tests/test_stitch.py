"""The compositor: mask 0 keeps the source bit-exactly, mask 1 takes the removed pixels,
overlapping chunks blend their removed pixels by weight but never let masked text through;
and stitching through real staged chunks."""

from __future__ import annotations

import numpy as np
import pytest

from clear_ray.chunking import blend_weights, plan_chunks, plan_segments
from clear_ray.removers.base import RemovalResult
from clear_ray.staging import StagedFrame, quantize_mask, stage_result
from clear_ray.stitch import composite_frame, frame_layers

H, W = 48, 64


def _staged_frame(removed_hwc_u8: np.ndarray, mask_hw_f32: np.ndarray) -> StagedFrame:
    """Stage one frame through the real staging code (a 1-frame chunk)."""
    (chunk,) = plan_chunks(1, 5, 0)
    result = RemovalResult(removed_hwc_u8[None], mask_hw_f32[None].astype(np.float32))
    return stage_result(chunk, result).frames[0]


def _reference(source, layers):
    """The contract in float64 over the whole frame: alpha = max m, colour = sum w m r / sum w m."""
    alpha = np.zeros(source.shape[:2])
    colour_weight = np.zeros(source.shape[:2])
    colour_sum = np.zeros(source.shape)
    for weight, removed, mask_u8 in layers:
        mask = mask_u8 / 255.0
        alpha = np.maximum(alpha, mask)
        colour_weight += weight * mask
        colour_sum += (weight * mask)[..., None] * removed
    colour = colour_sum / np.where(colour_weight > 0, colour_weight, 1)[..., None]
    out = source * (1 - alpha)[..., None] + alpha[..., None] * colour
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), alpha


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_mask_zero_is_the_source_object_itself(rng):
    source = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    untouched = _staged_frame(removed, np.zeros((H, W), np.float32))
    assert composite_frame(source, []) is source
    assert composite_frame(source, [(1.0, untouched)]) is source
    assert composite_frame(source, [(0.4, untouched), (0.6, untouched)]) is source


def test_mask_one_takes_removed_pixels_and_everything_else_is_bit_exact(rng):
    source = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask = np.zeros((H, W), np.float32)
    mask[30:40, 5:60] = 1.0
    mask[10, 10] = 1.0  # an isolated pixel widens the box over untouched pixels
    source_before = source.copy()
    out = composite_frame(source, [(1.0, _staged_frame(removed, mask))])
    inside = mask > 0
    assert np.array_equal(out[inside], removed[inside])
    assert np.array_equal(out[~inside], source[~inside])
    assert out is not source and np.array_equal(source, source_before)  # the input frame is not written


def test_soft_mask_and_blended_overlaps_follow_the_contract(rng):
    source = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed_a = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed_b = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed_c = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask_a = np.zeros((H, W), np.float32)
    mask_a[5:30, 4:50] = rng.uniform(0, 1, (25, 46))
    mask_b = np.zeros((H, W), np.float32)
    mask_b[20:44, 30:60] = 1.0
    mask_c = np.zeros((H, W), np.float32)
    mask_c[0:10, 0:10] = 0.5
    weights = (0.2, 0.5, 0.3)  # a 3-way overlap
    layers = [(w, _staged_frame(r, m)) for w, r, m in zip(weights, (removed_a, removed_b, removed_c),
                                                          (mask_a, mask_b, mask_c))]
    out = composite_frame(source, layers)
    expected, alpha = _reference(source, [(w, r, quantize_mask(m)) for w, r, m in
                                          zip(weights, (removed_a, removed_b, removed_c), (mask_a, mask_b, mask_c))])
    assert np.abs(out.astype(int) - expected).max() <= 1  # float32 vs float64 rounding
    assert np.mean(out == expected) > 0.999
    untouched = alpha == 0
    assert untouched.any() and np.array_equal(out[untouched], source[untouched])


def test_two_full_masks_cross_fade_between_removed_frames(rng):
    source = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed_a = np.full((H, W, 3), 200, np.uint8)
    removed_b = np.full((H, W, 3), 100, np.uint8)
    full = np.ones((H, W), np.float32)
    out = composite_frame(source, [(0.25, _staged_frame(removed_a, full)),
                                   (0.75, _staged_frame(removed_b, full))])
    assert np.all(out == 125)  # the source does not leak in


def test_disagreeing_overlaps_never_show_masked_text(rng):
    """Chunk A found the text (weight 0.3 here), chunk B missed it (weight 0.7): the text
    must not show at 70 %; the pixels are A's, the only chunk that replaced them."""
    source = np.full((H, W, 3), 40, np.uint8)
    source[20:28, 8:56] = 255  # white "text"
    removed_a = np.full((H, W, 3), 40, np.uint8)  # A filled the text with the background
    text = np.zeros((H, W), np.float32)
    text[20:28, 8:56] = 1.0
    nothing = np.zeros((H, W), np.float32)
    for weight_a in (0.3, 0.05, 0.0):  # down to the very end of A's ramp
        out = composite_frame(source, [(weight_a, _staged_frame(removed_a, text)),
                                       (1.0 - weight_a, _staged_frame(source, nothing))])
        assert np.array_equal(out, removed_a), weight_a


def test_disagreeing_soft_masks_hide_as_much_as_the_strongest(rng):
    source = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed_a = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    removed_b = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    mask_a = np.zeros((H, W), np.float32)
    mask_a[:, :32] = 1.0
    mask_b = np.full((H, W), 0.25, np.float32)
    out = composite_frame(source, [(0.2, _staged_frame(removed_a, mask_a)),
                                   (0.8, _staged_frame(removed_b, mask_b))])
    # Left half: fully masked by A -> no source at all, only A's and B's pixels blended.
    colour = (0.2 * removed_a[:, :32] + 0.8 * 0.25 * removed_b[:, :32].astype(float)) / (0.2 + 0.8 * 0.25)
    assert np.abs(out[:, :32].astype(int) - np.rint(colour)).max() <= 1
    # Right half: only B's quarter mask -> a quarter of B over the source.
    expected = np.rint(0.75 * source[:, 32:] + 0.25 * removed_b[:, 32:].astype(float))
    assert np.abs(out[:, 32:].astype(int) - expected).max() <= 1


def test_frame_layers_follow_the_plan():
    chunks = plan_chunks(150, 81, 16)  # 3-way overlap on frames 69..80
    rng = np.random.default_rng(0)
    staged = {}
    for chunk in chunks:
        frames = rng.integers(0, 256, (chunk.length, 4, 4, 3), dtype=np.uint8)
        staged[chunk.index] = stage_result(chunk, RemovalResult(frames, np.ones((chunk.length, 4, 4), np.float32)))
    weights = blend_weights(chunks, 150)
    segments = plan_segments(chunks, 150)
    for segment in segments:
        for frame_index in range(segment.start, segment.stop):
            layers = frame_layers(frame_index, segment.chunk_indices, staged, weights)
            covering = [c for c in chunks if c.start <= frame_index < c.stop]
            assert len(layers) == len(covering)
            assert sum(w for w, _ in layers) == pytest.approx(1.0, abs=1e-9)
            for (weight, frame), chunk in zip(layers, covering):
                assert frame is staged[chunk.index].frames[frame_index - chunk.start]
    assert max(len(s.chunk_indices) for s in segments) == 3


# --- streaming helpers and the stitch driver on real files ---------------------------------

def test_prefetched_keeps_order_propagates_errors_and_stops_early():
    from clear_ray.stitch import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("decoder broke")

    consumed = []
    with pytest.raises(ValueError, match="decoder broke"):
        for item in prefetched(failing(), depth=2):
            consumed.append(item)
    assert consumed == [1]

    closed = []

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.append(True)

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()  # abandoning the consumer stops and closes the producer
    assert closed == [True]


def _config(source, plugin=None, storage=None, **overrides):
    from clear_ray.config import RemoveJobConfig, load_config

    settings = {"src": str(source), "dst": "unused", "remover.backend": "identity", "remover.plugin": plugin,
                "chunking.chunk_size": 9, "chunking.overlap": 4, "output.preset": "ultrafast", **overrides}
    if storage is not None:
        settings.update({"storage.endpoint_url": storage.endpoint_url, "storage.region": "us-east-1",
                         "storage.access_key_id": storage.access_key, "storage.secret_access_key": storage.secret_key})
    return load_config(RemoveJobConfig, env={}, overrides=settings)


def test_stitch_refuses_missing_or_mismatched_chunks(make_clip, tmp_path):
    from clear_ray.media import SegmentEncoder, VideoInfo
    from clear_ray.pipeline.layout import VideoStaging
    from clear_ray.staging import read_staged_chunk, staged_chunk_uri
    from clear_ray.stitch import StitchError, stitch_segment
    from clear_ray.testing.stages import stage_chunks

    source = make_clip("src.mp4", frames=30, audio_tracks=0)
    chunks = plan_chunks(30, 9, 4)
    staging = VideoStaging(str(tmp_path / "st"))
    plan = stage_chunks(_config(source), str(source), staging.root)
    info, pts = VideoInfo.model_validate(plan["info"]), plan["frame_pts"]
    segment = plan_segments(chunks, 30)[1]
    weights = blend_weights(chunks, 30)
    encoder = SegmentEncoder(tmp_path / "seg.mp4", info, preset="ultrafast")
    with pytest.raises(StitchError, match="not staged"):
        stitch_segment(str(source), info, segment, {}, weights, encoder, frame_pts=pts)
    small = stage_result(chunks[0], RemovalResult(np.zeros((9, 8, 8, 3), np.uint8),
                                                  np.zeros((9, 8, 8), np.float32)))
    staged = {j: read_staged_chunk(staged_chunk_uri(staging.chunks_dir, j)) for j in segment.chunk_indices}
    staged[0] = small
    with pytest.raises(StitchError, match="8x8"):
        stitch_segment(str(source), info, segment, staged, weights, encoder, frame_pts=pts)
    with pytest.raises(ValueError, match="no frames"):  # refused before any frame was written
        encoder.close()
    assert not (tmp_path / "seg.mp4").exists()


def test_the_job_stages_with_staging_on_s3(make_clip, tmp_path, s3_server, s3_bucket):
    from clear_ray.media import frame_timestamps
    from clear_ray.pipeline.layout import VideoStaging
    from clear_ray.staging import list_staged_chunks
    from clear_ray.testing.stages import run_stages

    options = s3_server.storage_options()
    source = make_clip("src.mp4", frames=40, audio_tracks=1)
    staging = VideoStaging(f"{s3_bucket}/_staging/src/identity")
    config = _config(source, storage=s3_server, **{"chunking.segment_frames": 1})
    report = run_stages(config, str(source), str(tmp_path / "out.mp4"), staging.root)
    assert report.num_chunks == len(plan_chunks(40, 9, 4)) and report.num_segments == report.num_chunks
    assert list_staged_chunks(staging.chunks_dir, storage_options=options) == {}  # all released
    assert report.num_frames == 40
    assert np.array_equal(frame_timestamps(str(tmp_path / "out.mp4")), frame_timestamps(str(source)))


class _BandRemover:
    """Replaces a horizontal band with flat grey (mask 1, soft edge rows at 0.5)."""

    name = "band"
    wants_gpu = False

    def __init__(self, config=None, device="cpu"):
        pass

    def fingerprint(self) -> str:
        return "band-v1"

    def remove(self, frames_thwc_u8: np.ndarray) -> RemovalResult:
        mask_thw_f32 = np.zeros(frames_thwc_u8.shape[:3], np.float32)
        mask_thw_f32[:, 21:31] = 1.0
        mask_thw_f32[:, 20] = mask_thw_f32[:, 31] = 0.5
        return RemovalResult(np.full_like(frames_thwc_u8, 128), mask_thw_f32)


def test_stitch_keeps_the_decoders_yuv_outside_the_masks(make_clip, tmp_path):
    """Encoded losslessly, the stitched video is the source's YUV sample for sample except
    in the masked rows (and the chroma rows they share), which hold the removed grey."""
    import av

    from clear_ray.testing.stages import run_stages

    source = make_clip("src.mp4", frames=24, preset="medium", gop=10, audio_tracks=0)
    config = _config(source, "tests.test_stitch:_BandRemover", **{"output.crf": 0, "chunking.segment_frames": 1})
    run_stages(config, str(source), str(tmp_path / "out.mp4"), str(tmp_path / "st"))

    def planes(path):
        with av.open(str(path)) as container:
            return [[np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, :p.width].copy()
                     for p in frame.planes] for frame in container.decode(video=0)]

    source_planes, out_planes = planes(source), planes(tmp_path / "out.mp4")
    assert len(out_planes) == 24
    luma_rows = np.r_[0:20, 32:H]
    chroma_rows = np.r_[0:10, 16:H // 2]  # chroma row r covers luma rows 2r, 2r+1
    for src, out in zip(source_planes, out_planes):
        assert np.array_equal(out[0][luma_rows], src[0][luma_rows])
        assert np.array_equal(out[1][chroma_rows], src[1][chroma_rows])
        assert np.array_equal(out[2][chroma_rows], src[2][chroma_rows])
        assert np.abs(out[0][21:31].astype(int) - 126).max() <= 1  # RGB 128 grey, limited range BT.601
        assert not np.array_equal(out[0][21:31], src[0][21:31])
