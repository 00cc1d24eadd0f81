"""Entrypoint for `ray job submit`: Stage II training, the same job as `clear-ray train-stage2`.

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env jobs/runtime_env.yaml -- python jobs/train_stage2.py \
        --pairs s3://bucket/pairs --model-dir /models/Wan2.1-Fun-V1.1-1.3B-Control \
        --output s3://bucket/stage2 --workers 8 --gpus-per-worker 1

Inside a submitted job RAY_ADDRESS points at the cluster, so the driver joins it. Submitting
again with the same --output and run name resumes from the latest checkpoint.
"""

import os
import sys

# The working directory Ray uploads holds the clear_ray package: import it from there.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clear_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train-stage2", *sys.argv[1:]]))
