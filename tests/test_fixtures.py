"""The test infrastructure itself is real and works: Ray (fake GPU and no GPU), S3, clips."""

import subprocess
import sys
from fractions import Fraction

import pytest


def test_ray_fixture_runs_gpu_scheduled_actor_on_fake_gpu(ray_cluster):
    import ray

    assert ray_cluster["CPU"] == 2 and ray_cluster["GPU"] == 1

    @ray.remote(num_gpus=1, num_cpus=0)
    class GpuActor:
        def describe(self):
            import torch

            return ray.get_gpu_ids(), torch.cuda.is_available()

    actor = GpuActor.remote()
    gpu_ids, cuda_available = ray.get(actor.describe.remote(), timeout=120)
    assert gpu_ids == [0]
    assert cuda_available is False  # CPU machine: code in GPU actors must fall back to CPU
    ray.kill(actor)


@pytest.mark.slow
def test_cpu_only_head_has_no_gpu_and_runs_cpu_actors(cpu_only_ray_head):
    code = (
        "import ray\n"
        f"ray.init(address={cpu_only_ray_head.address!r})\n"
        "assert ray.cluster_resources().get('GPU', 0) == 0\n"
        "@ray.remote(num_cpus=1)\n"
        "def square(x): return x * x\n"
        "print(sum(ray.get([square.remote(i) for i in range(4)])))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "14"


def test_s3_server_round_trips_an_object_through_s3fs(s3_server, s3_bucket):
    import s3fs

    fs = s3_server.filesystem()
    payload = bytes(range(256)) * 4096  # 1 MiB, binary
    fs.pipe(f"{s3_bucket}/dir/object.bin", payload)
    assert fs.cat(f"{s3_bucket}/dir/object.bin") == payload
    assert fs.info(f"{s3_bucket}/dir/object.bin")["size"] == len(payload)
    assert fs.ls(f"{s3_bucket}/dir") == [f"{s3_bucket[5:]}/dir/object.bin"]
    # Credentials are enforced, as on real S3.
    intruder = s3fs.S3FileSystem(key="wrong", secret="wrong", skip_instance_cache=True,
                                 client_kwargs={"endpoint_url": s3_server.endpoint_url})
    with pytest.raises(PermissionError):
        intruder.cat(f"{s3_bucket}/dir/object.bin")


@pytest.mark.parametrize(
    ("name", "spec", "expected_audio"),
    [
        ("plain.mp4", dict(frames=30, fps="30000/1001", width=64, height=48), 1),
        ("odd.mkv", dict(frames=12, fps="24", width=85, height=47, audio_tracks=2, subtitle_track=True), 2),
        ("silent.mov", dict(frames=10, fps="60", width=32, height=32, audio_tracks=0), 0),
    ],
)
def test_clip_factory_writes_real_video_with_audio(make_clip, name, spec, expected_audio):
    import av

    path = make_clip(name, **spec)
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == "h264"
        assert (video.codec_context.width, video.codec_context.height) == (spec["width"], spec["height"])
        assert video.average_rate == Fraction(spec["fps"])
        audio = container.streams.audio
        assert len(audio) == expected_audio and all(a.codec_context.name == "aac" for a in audio)
        frames = sum(1 for packet in container.demux(video) if packet.size)
    assert frames == spec["frames"]


def test_natural_clip_is_real_footage(natural_clip):
    import av

    with av.open(str(natural_clip)) as container:
        assert container.streams.video[0].frames > 100
