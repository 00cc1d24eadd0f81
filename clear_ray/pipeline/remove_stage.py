"""Stage 2 (Ray Data map_batches on an actor pool): remove the subtitles of one chunk.

Each actor loads its remover once (on CUDA when the actor got a GPU, else CPU), then for
every chunk row decodes that chunk's frames itself, runs the remover and stages the
result next to DST. Pixels never leave the actor; rows stay small. Non-chunk rows pass
through untouched so the driver sees plans and failures in the same stream.

A chunk whose result is already staged (a Ray retry after the actor died between staging
and returning its row, or a resumed run) is not computed again: the actor checks for the
staged file before decoding, and reuses it when it was computed by a remover with this
actor's fingerprint (``Remover.fingerprint``: for CLEAR the settings plus device, dtype and
attention kernel); a chunk staged by a differently resolved remover (a resumed job now on
GPUs, earlier on CPUs) is recomputed, so one video never mixes the two. The row says which
node did the work (``node_id``), which remover (``producer``) and whether the staged result
was reused.

Backends that declare ``overlap_decode`` (CLEAR) get an actor that takes two chunks at once
(``actor_pool_concurrency``): one is decoded (and its result staged) while the other is on
the model; a lock keeps the model to one chunk at a time, so the GPU never holds two.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

import numpy as np

from clear_ray.config import RemoveJobConfig
from clear_ray.pipeline.plan_stage import MAX_WORKER_DEATHS, error_kind
from clear_ray.pipeline.poison import AttemptGuard
from clear_ray.pipeline.rows import one_line

log = logging.getLogger(__name__)

CHUNKS_IN_FLIGHT = 2  # per actor, for overlap_decode backends: one decoding, one on the model


def actor_pool_concurrency(remover_config) -> dict[str, Any]:
    """Extra ``ActorPoolStrategy`` arguments: for a backend with ``overlap_decode``, two
    concurrent calls per actor. Ray 2.60 runs a callable class's ``__call__`` one at a time
    (``make_callable_class_single_threaded``) even with ``max_concurrency`` > 1 unless
    ``enable_true_multi_threading`` is set; only that lets one call decode while another
    is in the model (``RemoverActor`` serialises the model itself)."""
    from clear_ray.removers import remover_class

    if not getattr(remover_class(remover_config), "overlap_decode", False):
        return {}
    return {"max_concurrent_calls_per_actor": CHUNKS_IN_FLIGHT, "enable_true_multi_threading": True}


def pin_threads(num_cpus: float) -> int:
    """Keep OpenCV/torch/BLAS inside the actor's CPU reservation: oversubscribing a shared
    node slows every actor on it down."""
    threads = max(1, int(num_cpus))
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for native libraries loaded later
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


def keep_freed_heap() -> None:
    """Let this process reuse the memory of frames it freed instead of handing it back to
    the kernel and faulting it in again for the next frame.

    glibc serves every allocation above 128 KiB (a decoded 720p RGB frame is 2.7 MB) with
    its own mmap and unmaps it on free, so each frame's pages were faulted in and zeroed
    anew: a third of a chunk's decode time went to the kernel (12 chunks of a 720p clip:
    5.9 s with 2.3 s of it in the kernel; with this and a reused chunk array, 3.0 s and
    0.07 s). Frame-sized blocks now come from the heap, which keeps up to 256 MiB free.
    No-op where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    mallopt(m_mmap_threshold, 64 << 20)
    mallopt(m_trim_threshold, 256 << 20)


class RemoverActor:
    """Callable class for ``map_batches(..., compute=ActorPoolStrategy(...))``."""

    def __init__(self, config: RemoveJobConfig, num_cpus: float):
        from clear_ray.removers import load_remover

        # Per-chunk progress bars of model libraries (DiffSynth's VAE tqdm) would flood the
        # job log; must be set before those libraries are imported.
        os.environ.setdefault("TQDM_DISABLE", "1")
        self.config = config
        self.storage_options = config.storage.s3_storage_options()
        # Decoder threads too: FFmpeg's automatic count on a large node costs more CPU per
        # frame than it saves (measured 20% more CPU with 2 threads than with 1 here).
        self.threads = pin_threads(num_cpus)
        self.device = self._device()
        self.remover = load_remover(config.remover, device=self.device)
        self.producer = self.remover.fingerprint()
        self.runtime = json.dumps(getattr(self.remover, "runtime", {}), sort_keys=True)
        self.node_id = _node_id()
        # Concurrent calls (actor_pool_concurrency) decode and stage side by side, but
        # only one chunk at a time is on the model.
        self._model_lock = threading.Lock()
        # Each calling thread decodes its next chunk into its previous chunk's array: by
        # then that chunk is staged and nothing refers to it (removers keep no state
        # between chunks; the kept decoder holds its own frames, not this array).
        self._chunk_arrays = threading.local()
        keep_freed_heap()
        pin_threads(num_cpus)  # again: the backend may have imported torch
        log.info("remover %s loaded on %s", self.remover.name, self.device)

    @staticmethod
    def _device() -> str:
        # Only an actor that Ray gave a GPU looks for CUDA (and only then imports torch); a
        # fake or absent GPU leaves torch.cuda unavailable and the remover runs on CPU.
        import ray

        if not ray.is_initialized() or not ray.get_gpu_ids():
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    def __call__(self, batch):  # pandas.DataFrame in and out (batch_format="pandas")
        out = batch.reset_index(drop=True).copy()
        for i in range(len(out)):
            if out.at[i, "kind"] != "chunk":
                continue
            started = time.perf_counter()
            out.at[i, "node_id"] = self.node_id
            out.at[i, "producer"] = self.producer
            out.at[i, "runtime"] = self.runtime
            try:
                out.at[i, "reused"] = self._remove(out.loc[i].to_dict())
            except Exception as error:
                out.at[i, "kind"] = "failed"
                out.at[i, "error"] = one_line(error)
                out.at[i, "error_kind"] = error_kind(error)
            out.at[i, "seconds"] = time.perf_counter() - started
        return out

    def _remove(self, row: dict[str, Any]) -> bool:
        """Stage the chunk's removal result; True when it was already staged (not recomputed)."""
        from clear_ray.chunking import Chunk, chunk_source_indices
        from clear_ray.media import VideoInfo, decode
        from clear_ray.pipeline.layout import VideoStaging
        from clear_ray.staging import read_staged_producer, staged_chunk_uri, write_staged_chunk

        staging = VideoStaging(str(row["staging_root"]))
        chunk = Chunk(index=int(row["chunk_index"]), start=int(row["start"]), stop=int(row["stop"]),
                      pad_before=int(row["pad_before"]), pad_after=int(row["pad_after"]))
        # Staged files appear only complete (atomic write): one under its final name is done,
        # if this kind of remover made it ("" = staged before producers were recorded).
        producer = read_staged_producer(staged_chunk_uri(staging.chunks_dir, chunk.index),
                                        storage_options=self.storage_options)
        if producer is not None and producer in ("", self.producer):
            return True
        if producer is not None:
            log.warning("chunk %d of %s was staged by remover %s, this actor is %s: recomputing it",
                        chunk.index, row["input_uri"], producer, self.producer)
        with AttemptGuard(staging.markers_dir, f"chunk-{chunk.index:06d}", max_deaths=MAX_WORKER_DEATHS,
                          time_limit_s=self.config.ray.chunk_timeout_s, storage_options=self.storage_options):
            info = VideoInfo.model_validate_json(str(row["detail"]))
            # The remover's input may take the fast RGB conversion: only its output where its
            # mask is set reaches the video, unless --no-composite keeps it everywhere.
            frames_thwc_u8 = decode(str(row["input_uri"]), chunk.start, chunk.stop, start_pts=int(row["start_pts"]),
                                    info=info, storage_options=self.storage_options, threads=self.threads,
                                    rgb="fast" if self.config.remover.composite else "accurate",
                                    keep_decoder=True,  # this actor's next chunk of the video continues it
                                    into=self._chunk_arrays.__dict__.pop("last", None))
            positions = chunk_source_indices(chunk) - chunk.start
            # Reflection padding needs a gather (a copy); an unpadded chunk is the decode itself.
            unpadded = np.array_equal(positions, np.arange(len(frames_thwc_u8)))
            window_thwc_u8 = frames_thwc_u8 if unpadded else frames_thwc_u8[positions]
            with self._model_lock:
                result = self.remover.remove(window_thwc_u8)
            if not self.config.remover.composite:
                # --no-composite: the model's output is kept everywhere.
                whole = result.whole(window_thwc_u8)
                result = type(result)(whole.frames_thwc_u8, np.ones_like(whole.mask_thw_f32))
            write_staged_chunk(staging.chunks_dir, chunk, result, storage_options=self.storage_options,
                               producer=self.producer)
        self._chunk_arrays.last = frames_thwc_u8.base if frames_thwc_u8.base is not None else frames_thwc_u8
        return False


def _node_id() -> str:
    import ray

    if not ray.is_initialized():  # the in-process runner (clear_ray.testing.stages)
        return "local"
    return ray.get_runtime_context().get_node_id()
