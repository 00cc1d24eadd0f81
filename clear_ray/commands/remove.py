"""`clear-ray remove SRC DST`: the main batch job."""

from __future__ import annotations

import argparse
import sys

import yaml

from clear_ray.commands.errors import CommandError
from clear_ray.config import RemoveJobConfig, load_config

# flag -> (dotted config field, argparse keyword arguments). Every flag defaults to None
# so that an unset flag never overrides the YAML file or the environment.
FLAGS: dict[str, tuple[str, dict]] = {
    "--backend": ("remover.backend", {"choices": ["auto", "clear", "lite", "identity"]}),
    "--chunk-size": ("chunking.chunk_size", {"type": int, "metavar": "N", "help": "frames per window, 4n+1 (81)"}),
    "--chunk-overlap": ("chunking.overlap", {"type": int, "metavar": "N", "help": "frames shared by windows (16)"}),
    "--crf": ("output.crf", {"type": int, "help": "x264 quality, 0-51 (17)"}),
    "--preset": ("output.preset", {"help": "x264 preset (medium)"}),
    "--comparison": ("output.comparison", {"action": "store_const", "const": True, "help": "also write side-by-side videos"}),
    "--force": ("force", {"action": "store_const", "const": True, "help": "re-process inputs the manifest says are done"}),
    "--retry-failed": ("retry_failed", {"action": "store_const", "const": True, "help": "retry quarantined inputs"}),
    "--max-attempts": ("max_attempts", {"type": int, "help": "failures before an input is quarantined (3)"}),
    "--wait-for-lease": ("wait_for_lease", {"action": "store_const", "const": True,
                                            "help": "wait while another run writes DST (else exit 3)"}),
    "--lease-wait-timeout": ("lease_wait_timeout_s", {"type": float, "metavar": "S",
                                                      "help": "stop waiting for DST after S seconds (exit 3)"}),
    "--lease-ttl": ("lease_ttl_s", {"type": float, "metavar": "S",
                                    "help": "a run silent this long loses DST to the next (120)"}),
    "--address": ("ray.address", {"help": "connect to an existing Ray cluster instead of starting one"}),
    "--num-gpus-per-actor": ("ray.num_gpus_per_actor", {"type": float}),
    "--num-cpus-per-actor": ("ray.num_cpus_per_actor", {"type": float}),
    "--min-actors": ("ray.min_actors", {"type": int}),
    "--max-actors": ("ray.max_actors", {"type": int}),
    "--allow-cpu-fallback": ("ray.allow_cpu_fallback", {"action": "store_const", "const": True,
                                                        "help": "run a GPU backend on CPU when the cluster has no GPU"}),
    "--shared-filesystem": ("ray.shared_filesystem", {"action": "store_const", "const": True,
                                                      "help": "local SRC/DST are mounted on every node of the cluster"}),
    "--quiet": ("quiet", {"action": "store_const", "const": True, "help": "only errors and the summary (cron)"}),
    "--model-dir": ("remover.clear.model_dir", {"metavar": "DIR", "help": "Wan2.1-Fun-V1.1-1.3B-Control files"}),
    "--lora": ("remover.clear.lora", {"metavar": "FILE", "help": "CLEAR LoRA checkpoint"}),
    "--lora-scale": ("remover.clear.lora_scale", {"type": float, "help": "0-2 (1.0)"}),
    "--steps": ("remover.clear.steps", {"type": int, "help": "denoising steps (5)"}),
    "--cfg": ("remover.clear.cfg", {"type": float, "help": "guidance scale (1.0)"}),
    "--no-composite": ("remover.composite", {"action": "store_const", "const": False,
                                             "help": "keep the model output everywhere, not only inside its mask"}),
    "--s3-endpoint-url": ("storage.endpoint_url", {"metavar": "URL"}),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", metavar="SRC", help="video file, directory, glob or s3://bucket/prefix")
    parser.add_argument("dst", metavar="DST", help="output directory or s3://bucket/prefix")
    parser.add_argument("--config", metavar="FILE", help="YAML file with any of the settings below")
    parser.add_argument("--print-config", action="store_true", help="print the validated settings and exit")
    for flag, (dotted, kwargs) in FLAGS.items():
        parser.add_argument(flag, dest=_dest(dotted), default=None, **kwargs)


def job_config(args: argparse.Namespace) -> RemoveJobConfig:
    overrides = {"src": args.src, "dst": args.dst}
    overrides.update({dotted: getattr(args, _dest(dotted)) for dotted, _ in FLAGS.values()})
    return load_config(RemoveJobConfig, yaml_path=args.config, overrides=overrides)


def run(args: argparse.Namespace) -> int:
    config = job_config(args)
    if args.print_config:
        # model_dump keeps SecretStr masked, so credentials never reach the terminal.
        yaml.safe_dump(config.model_dump(mode="json"), sys.stdout, sort_keys=False)
        return 0
    from clear_ray.catalog import CatalogError
    from clear_ray.lease import EXIT_LEASE_HELD, EXIT_LEASE_LOST, LeaseHeld, LeaseLost
    from clear_ray.pipeline import run_remove_job
    from clear_ray.pipeline.resources import ClusterUnsuitable
    from clear_ray.removers.base import RemoverSetupError
    from clear_ray.storage import StorageUnavailable

    try:
        summary = run_remove_job(config)
    except (CatalogError, RemoverSetupError, NotImplementedError, ClusterUnsuitable) as error:
        raise CommandError(str(error).splitlines()[0], exit_code=2) from None
    except LeaseHeld as error:
        raise CommandError(str(error), exit_code=EXIT_LEASE_HELD) from None
    except LeaseLost as error:
        raise CommandError(f"stopped: {error}", exit_code=EXIT_LEASE_LOST) from None
    except StorageUnavailable as error:
        raise CommandError(str(error).splitlines()[0], exit_code=EXIT_STORAGE_UNAVAILABLE) from None
    return summary.exit_code


# Exit codes (README "Exit codes"): 0 ok, 1 some input failed, 2 bad settings / SRC,
# 3 DST held by another run, 4 DST lease lost mid-run, 5 storage unreachable past the retries.
EXIT_STORAGE_UNAVAILABLE = 5


def _dest(dotted: str) -> str:
    return "cfg__" + dotted.replace(".", "__")
