"""Entrypoint for `ray job submit`: the same job as `clear-ray make-pairs`, on the cluster.

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env jobs/runtime_env.yaml -- python jobs/make_pairs.py SRC DST [flags]

Inside a submitted job RAY_ADDRESS points at the cluster, so the driver joins it instead
of starting a local one. Every `clear-ray make-pairs` flag works here.
"""

import os
import sys

# The working directory Ray uploads holds the clear_ray package: import it from there.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clear_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["make-pairs", *sys.argv[1:]]))
