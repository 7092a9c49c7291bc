"""The Hydra entry point: ``python -m wsl.run stage=<name> [overrides]`` (or the ``wsl`` console script).

It composes the configuration from the repository's ``conf/`` (found from this file, never from the
current directory), checks it, picks the stage from :data:`wsl.stages.STAGES` and runs it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

# oneDNN caches one compiled convolution per input shape (1,024 by default). Datasets whose images differ
# in size (VOC, the toy data) would fill it, so resident memory would grow with the dataset; a small cache
# keeps memory flat (measured on 1,000 toy images: +4 % instead of +17 % from 200 to 1,000 images).
# Set before torch is imported; a user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from wsl import CONF_DIR, REPO_ROOT, dist  # noqa: E402, F401 - REPO_ROOT for the tests and scripts
from wsl.config_schema import (  # noqa: E402
    composition_error_line,
    register_resolvers,
    register_schemas,
    validate_config,
)
from wsl.errors import UserError  # noqa: E402

log = logging.getLogger("wsl")


register_resolvers()
register_schemas()

# Stages that work on a few chosen images or methods, not sharded: under torchrun rank 0 runs them.
RANK0_ONLY = frozenset({"benchmark", "visualize", "explain"})


def run_stage(cfg: DictConfig) -> dict:
    """Check ``cfg``, make sure the stage's inputs exist (see :data:`wsl.stages.NEEDS`), run the stage."""
    from wsl.stages import STAGES, load_stage

    validate_config(cfg)
    name = cfg.stage.name
    if name not in STAGES:
        raise UserError(f"stage={name}: unknown stage; allowed: {', '.join(sorted(STAGES))}")
    set_threads(cfg)
    ensure_inputs(cfg)
    if name in RANK0_ONLY and dist.launched_by_torchrun():
        # Not sharded: the prerequisites above (a DDP training) needed every rank, the stage needs one.
        dist.destroy()  # so that no rank waits at a barrier for as long as rank 0 works
        if dist.rank() > 0:
            log.warning("stage=%s runs on rank 0 only: rank %d has nothing to do", name, dist.rank())
            return {}
    return load_stage(name).run(cfg)


def set_threads(cfg: DictConfig) -> None:
    """torch's intra-op threads: ``threads``, or the cores this process may use minus its DataLoader
    workers (:func:`wsl.threads.default_threads`); says what it chose."""
    import torch

    from wsl.threads import available_cores, default_threads

    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    threads = cfg.get("threads") or default_threads(cfg.num_workers, per_node)
    torch.set_num_threads(threads)
    log.info("torch uses %d CPU thread(s): %s", threads, "as threads= asks" if cfg.get("threads") else
             f"{available_cores()} core(s) available, {per_node} process(es) on this node, "
             f"{cfg.num_workers} DataLoader worker(s); set threads= to change it")  # fmt: skip


def ensure_inputs(cfg: DictConfig) -> None:
    """Run the missing prerequisites that :data:`wsl.stages.RUNS_FIRST` allows, saying so; any other
    missing input is one :class:`UserError` line naming the command that makes it."""
    from wsl.stages import NEEDS, RUNS_FIRST, common

    name = cfg.stage.name
    for need in NEEDS[name]:
        path = common.produced(cfg, need)
        if path.is_file():
            continue
        if (name, need) not in RUNS_FIRST:
            raise UserError(f"stage={name} needs {path}: run `{common.command(cfg, need)}` first")
        log.info("stage=%s needs %s, which is missing: running stage=%s first (its default settings)",
                 name, path, need)  # fmt: skip
        run_stage(common.compose_stage(cfg, need))


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    dist.adopt_scheduler_env()  # a submitit job with several tasks: torchrun's variables from SLURM's
    if "TORCHELASTIC_RUN_ID" in os.environ:  # a torchrun worker (submitit keeps its own signal handling)
        # torchrun stops the other workers with SIGTERM when one fails (and before a restart): exit through
        # Python, so that atomic writes remove their temporary files and the group is torn down.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if dist.rank() > 0:  # under torchrun rank 0 reports; the others speak only to warn
        logging.getLogger().setLevel(logging.WARNING)
    finished = False
    try:
        run_stage(cfg)
        finished = True
    except UserError as e:
        log.error("%s", e)
        sys.exit(2)
    except OSError as e:  # a read-only or full output folder, a path that is a file...: the user's to fix
        log.error("%s", os_error_line(e))
        sys.exit(2)
    except RuntimeError as e:
        if not dist.peer_lost(e):
            raise
        # The process that failed reports its own error; this one says only why it stops (exit 1: torchrun
        # --max-restarts restarts the group, or reports the failure).
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        log.error("rank %d stops: another process of the group failed or was stopped (%s)", dist.rank(),
                  first.split("] ", 1)[-1])  # fmt: skip
        sys.exit(1)
    finally:
        # Every stage, on success and on error: the group is torn down before the interpreter exits (a
        # barrier first on success; after an error the other ranks may be in another collective).
        dist.destroy(synchronize=finished)


def _exit_on_sigterm(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def os_error_line(e: OSError) -> str:
    """An operating-system error (permissions, disk full, read-only file system) as one line."""
    if e.strerror is None:  # raised with a message of its own (wsl.errors.BadItem, ...)
        return " ".join(str(e).split())
    where = f" {e.filename}" if e.filename else ""
    return f"cannot write or read{where}: {e.strerror} (check the path, its permissions and the free space)"


def main() -> None:
    # Under torchrun only rank 0 writes Hydra's .hydra/ folder and the log file.
    if int(os.environ.get("RANK", "0")) > 0:
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the user asked for Hydra's own reports
        _hydra_main()
        return
    # Hydra reports a composition error (a wrong type, an unknown key or option) over several lines: have it
    # raise instead (a bug then keeps its full traceback) and print one line, exit code 2.
    from hydra.errors import ConfigCompositionException, OverrideParseException

    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()
    except (ConfigCompositionException, OverrideParseException) as e:
        print(composition_error_line(e), file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # Hydra could not create the run's log folder (read-only output root, ...)
        print(os_error_line(e), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
