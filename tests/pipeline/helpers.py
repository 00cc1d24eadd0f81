"""Shared helpers for the pipeline tests: run a job, compare inputs with outputs."""

from __future__ import annotations

import hashlib
from fractions import Fraction

from clear_ray.config import RemoveJobConfig, load_config


SEGMENT_FRAMES = 10


def job_config(src: str, dst: str, **overrides) -> RemoveJobConfig:
    # Small windows exercise many chunks/segments on tiny clips; fast x264 for tests.
    # Segments of >= 10 frames: tiny clips still become several independently encoded pieces.
    settings = {"src": src, "dst": dst, "remover.backend": "identity", "chunking.chunk_size": 9,
                "chunking.overlap": 2, "chunking.segment_frames": SEGMENT_FRAMES, "output.preset": "ultrafast",
                "ray.max_actors": 1, "quiet": True}
    settings.update(overrides)
    return load_config(RemoveJobConfig, overrides=settings, env={})


def stream_signature(path_or_file) -> dict:
    """What must be identical between input and output: frames, timing, size, audio bytes."""
    import av

    with av.open(path_or_file) as container:
        video = container.streams.video[0]
        audio_hashes = {}
        video_pts = []
        for packet in container.demux():
            if packet.stream.type == "video" and packet.pts is not None:
                video_pts.append(packet.pts * video.time_base)
            elif packet.stream.type == "audio" and packet.size:
                audio_hashes.setdefault(packet.stream.index, hashlib.sha256())
                audio_hashes[packet.stream.index].update(bytes(packet))
        return {
            "frames": len(video_pts),
            "pts": sorted(Fraction(p) for p in video_pts),
            "size": (video.codec_context.width, video.codec_context.height),
            "rate": video.average_rate,
            "audio": [h.hexdigest() for _, h in sorted(audio_hashes.items())],
        }
