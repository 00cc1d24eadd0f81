import sys

from clear_ray.cli import main

sys.exit(main())
