"""Staged chunk results: lossless, compact, atomic, local and on a real S3 server."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest

from clear_ray.chunking import Chunk, plan_chunks, real_frame_slice
from clear_ray.removers.base import RemovalResult
from clear_ray.staging import (
    FORMAT_VERSION,
    StagingError,
    decode_staged_chunk,
    delete_staged_chunk,
    delete_staged_dir,
    encode_staged_chunk,
    list_staged_chunks,
    quantize_mask,
    read_staged_chunk,
    stage_result,
    staged_chunk_uri,
    write_staged_chunk,
)


def _result(chunk: Chunk, height: int = 48, width: int = 64, seed: int = 0) -> RemovalResult:
    """Random frames; per frame a soft band whose position moves, some frames untouched."""
    rng = np.random.default_rng(seed)
    frames_thwc_u8 = rng.integers(0, 256, (chunk.length, height, width, 3), dtype=np.uint8)
    mask_thw_f32 = np.zeros((chunk.length, height, width), np.float32)
    for t in range(chunk.length):
        if t % 3 == 2:
            continue  # untouched frame
        y0 = 5 + t % 7
        mask_thw_f32[t, y0:y0 + 8, 3:width - 2] = rng.uniform(0.0, 1.0, (8, width - 5)).astype(np.float32)
        mask_thw_f32[t, y0 + 2:y0 + 5, 10:20] = 1.0
    return RemovalResult(frames_thwc_u8, mask_thw_f32)


def _dense(staged, height, width):
    """Expand a staged chunk back to dense (mask_u8, pixels) arrays for comparison."""
    mask = np.zeros((len(staged.frames), height, width), np.uint8)
    pixels = np.zeros((len(staged.frames), height, width, 3), np.uint8)
    for t, frame in enumerate(staged.frames):
        if frame.empty:
            continue
        y0, y1, x0, x1 = frame.box
        mask[t, y0:y1, x0:x1] = frame.mask_hw_u8
        region = pixels[t, y0:y1, x0:x1]
        region[frame.mask_hw_u8 > 0] = frame.pixels_mc_u8
    return mask, pixels


def test_quantize_mask_keeps_zero_and_support():
    mask = np.array([0.0, 1e-7, 0.001, 0.5, 0.999, 1.0], np.float32)
    assert quantize_mask(mask).tolist() == [0, 1, 1, 128, 255, 255]
    with pytest.raises(StagingError, match="within"):
        quantize_mask(np.array([1.5], np.float32))
    with pytest.raises(StagingError, match="finite"):
        quantize_mask(np.array([np.nan], np.float32))


def test_round_trip_is_lossless_and_drops_padding():
    (chunk,) = plan_chunks(7, 81, 16)  # 7 real frames padded to 9
    assert chunk.length == 9
    result = _result(chunk)
    staged = decode_staged_chunk(encode_staged_chunk(stage_result(chunk, result)))
    assert staged.chunk == chunk and len(staged.frames) == 7

    mask, pixels = _dense(staged, 48, 64)
    expected_mask = quantize_mask(result.mask_thw_f32[real_frame_slice(chunk)])
    assert np.array_equal(mask, expected_mask)
    touched = expected_mask > 0
    assert np.array_equal(pixels[touched], result.frames_thwc_u8[real_frame_slice(chunk)][touched])
    assert staged.frames[2].empty and not staged.frames[0].empty
    assert staged.frame(chunk.start + 1) is staged.frames[1]
    with pytest.raises(IndexError):
        staged.frame(chunk.stop)


def test_a_result_for_one_region_stages_as_its_whole_frames_do():
    (chunk,) = plan_chunks(7, 81, 16)
    source = np.random.default_rng(3).integers(0, 256, (chunk.length, 48, 64, 3), dtype=np.uint8)
    whole = _result(chunk, seed=4)
    y0, y1, x0, x1 = 4, 25, 2, 63  # holds every mask pixel of _result
    region = RemovalResult(whole.frames_thwc_u8[:, y0:y1, x0:x1], whole.mask_thw_f32[:, y0:y1, x0:x1],
                           origin_yx=(y0, x0), frame_hw=(48, 64))
    assert region.region == (y0, y1, x0, x1)
    assert encode_staged_chunk(stage_result(chunk, region)) == encode_staged_chunk(stage_result(chunk, whole))
    expanded = region.whole(source)
    assert np.array_equal(expanded.mask_thw_f32, whole.mask_thw_f32)
    touched = whole.mask_thw_f32 > 0
    assert np.array_equal(expanded.frames_thwc_u8[touched], whole.frames_thwc_u8[touched])
    outside = np.ones((48, 64), bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(expanded.frames_thwc_u8[:, outside], source[:, outside])
    nothing = RemovalResult(source[:, :0, :0], np.zeros((chunk.length, 0, 0), np.float32), frame_hw=(48, 64))
    assert all(frame.empty for frame in stage_result(chunk, nothing).frames)
    with pytest.raises(ValueError, match="outside"):
        RemovalResult(whole.frames_thwc_u8[:, :30], whole.mask_thw_f32[:, :30], origin_yx=(20, 0), frame_hw=(48, 64))
    with pytest.raises(ValueError, match="frame_hw"):
        RemovalResult(whole.frames_thwc_u8, whole.mask_thw_f32, origin_yx=(1, 0))


def test_sizes_identity_tiny_band_small():
    chunk = plan_chunks(200, 21, 4)[3]
    height, width = 120, 160
    rng = np.random.default_rng(1)
    frames_thwc_u8 = rng.integers(0, 256, (chunk.length, height, width, 3), dtype=np.uint8)
    identity = RemovalResult(frames_thwc_u8, np.zeros((chunk.length, height, width), np.float32))
    identity_bytes = len(encode_staged_chunk(stage_result(chunk, identity)))
    assert identity_bytes < 64 * chunk.length  # header + 16 bytes of box per frame

    band = np.zeros((chunk.length, height, width), np.float32)
    band[:, 100:112, :] = 1.0  # 10 % of the frame
    band_bytes = len(encode_staged_chunk(stage_result(chunk, RemovalResult(frames_thwc_u8, band))))
    # Random pixels do not compress: cost ~= the band's pixels + a compressed mask.
    band_pixels = chunk.length * 12 * width * 3
    assert band_pixels <= band_bytes < 1.1 * band_pixels


def test_result_of_wrong_length_is_refused():
    chunk = plan_chunks(50, 21, 4)[0]
    bad = RemovalResult(np.zeros((20, 8, 8, 3), np.uint8), np.zeros((20, 8, 8), np.float32))
    with pytest.raises(StagingError, match="21 frames"):
        stage_result(chunk, bad)


def test_local_write_is_atomic_and_listed(tmp_path):
    chunks = plan_chunks(60, 21, 4)
    staging_dir = str(tmp_path / "staging" / "video" / "model")
    assert list_staged_chunks(staging_dir) == {}
    # A leftover temp file from a crashed writer must never count as staged.
    os.makedirs(staging_dir)
    open(os.path.join(staging_dir, ".chunk-000000.crs.tmp-dead"), "wb").close()
    uris = {c.index: write_staged_chunk(staging_dir, c, _result(c, seed=c.index)) for c in chunks}
    assert list_staged_chunks(staging_dir) == uris
    assert uris[1] == staged_chunk_uri(staging_dir, 1)
    # Nothing but final names and the stale temp file are left behind.
    assert sorted(os.listdir(staging_dir)) == sorted(
        [".chunk-000000.crs.tmp-dead"] + [os.path.basename(u) for u in uris.values()])
    again = read_staged_chunk(uris[2])
    assert again.chunk == chunks[2]
    assert np.array_equal(_dense(again, 48, 64)[0],
                          quantize_mask(_result(chunks[2], seed=2).mask_thw_f32[real_frame_slice(chunks[2])]))
    delete_staged_chunk(uris[0])
    delete_staged_chunk(uris[0])  # releases may repeat
    assert sorted(list_staged_chunks(staging_dir)) == [c.index for c in chunks[1:]]
    delete_staged_dir(staging_dir)
    assert not os.path.exists(staging_dir)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    chunk = plan_chunks(30, 21, 4)[0]

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_staged_chunk(str(tmp_path), chunk, _result(chunk))
    assert os.listdir(tmp_path) == []


def test_corrupt_truncated_and_future_files_are_refused(tmp_path):
    chunk = plan_chunks(30, 21, 4)[1]
    uri = write_staged_chunk(str(tmp_path), chunk, _result(chunk))
    data = open(uri, "rb").read()
    with pytest.raises(StagingError, match="checksum"):
        decode_staged_chunk(data[:-10])
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    with pytest.raises(StagingError, match="checksum"):
        decode_staged_chunk(bytes(flipped))
    future = data[:8] + struct.pack("<I", FORMAT_VERSION + 1) + data[12:]
    with pytest.raises(StagingError, match="version"):
        decode_staged_chunk(future)
    with pytest.raises(StagingError, match="not a clear_ray staged chunk"):
        decode_staged_chunk(b"PK\x03\x04 something else")
    with pytest.raises(StagingError, match="no staged chunk"):
        read_staged_chunk(str(tmp_path / "chunk-000099.crs"))


def test_s3_write_read_list_delete(s3_server, s3_bucket):
    options = s3_server.storage_options()
    chunks = plan_chunks(40, 21, 4)
    staging_dir = f"{s3_bucket}/_staging/video-key/model-fp"
    for chunk in chunks:
        write_staged_chunk(staging_dir, chunk, _result(chunk, seed=chunk.index), storage_options=options)
    listed = list_staged_chunks(staging_dir, storage_options=options)
    assert sorted(listed) == [c.index for c in chunks]
    staged = read_staged_chunk(listed[1], storage_options=options)
    expected = stage_result(chunks[1], _result(chunks[1], seed=1))
    assert staged.chunk == chunks[1]
    for got, want in zip(staged.frames, expected.frames):
        assert got.box == want.box
        assert np.array_equal(got.mask_hw_u8, want.mask_hw_u8)
        assert np.array_equal(got.pixels_mc_u8, want.pixels_mc_u8)
    delete_staged_chunk(listed[0], storage_options=options)
    assert sorted(list_staged_chunks(staging_dir, storage_options=options)) == [c.index for c in chunks[1:]]
    delete_staged_dir(staging_dir, storage_options=options)
    assert list_staged_chunks(staging_dir, storage_options=options) == {}


def test_the_producer_check_rides_out_an_s3_restart(tmp_path):
    """An actor asks whether a chunk is staged before computing it; an S3 restart at that
    moment must delay the answer, not fail the chunk's video (seen in CI: the whole video
    failed with EndpointConnectionError while every other storage call was retried)."""
    import threading
    import time

    from clear_ray.staging import read_staged_producer
    from clear_ray.testing.s3_server import SeaweedS3

    with SeaweedS3(data_dir=tmp_path / "s3-data") as server:  # its own server: this test stops it
        options = server.storage_options()
        server.filesystem().mkdir("restart")
        chunk = plan_chunks(13, 13, 0)[0]
        uri = write_staged_chunk("s3://restart/_staging/key/fp", chunk, _result(chunk), storage_options=options,
                                 producer="remover-a")
        server.stop_keeping_data()
        down_at = time.monotonic()
        # Longer than s3fs's own few seconds of connection retries, as the outage CI hit.
        restarter = threading.Timer(12.0, server.start)
        restarter.start()
        try:
            assert read_staged_producer(uri, storage_options=options) == "remover-a"
        finally:
            restarter.join()
        assert time.monotonic() - down_at >= 12.0  # it was answered only after the restart
