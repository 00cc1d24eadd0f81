"""Entrypoint for `ray job submit`: the same job as `clear-ray remove`, on the cluster.

    ray job submit --address http://HEAD:8265 --working-dir . \
        --runtime-env jobs/runtime_env.yaml -- python jobs/remove_subtitles.py SRC DST [flags]

Inside a submitted job RAY_ADDRESS points at the cluster, so the driver joins it instead
of starting a local one. Every `clear-ray remove` flag works here, and the exit codes are
the same (README "Exit codes"; e.g. 3 when another run holds DST's lease).
"""

import os
import sys

# The working directory Ray uploads holds the clear_ray package: import it from there, so
# a cluster image needs only the dependencies, not this project installed.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from clear_ray.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["remove", *sys.argv[1:]]))
