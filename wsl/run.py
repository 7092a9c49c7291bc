"""The Hydra entry point: ``python -m wsl.run stage=<name> [overrides]`` (or the ``wsl`` console script).

It composes the configuration from the repository's ``conf/`` (found from this file, never from the
current directory), checks it, picks the stage from :data:`wsl.stages.STAGES` and runs it.
"""

from __future__ import annotations

import logging
import os
import sys

# oneDNN caches one compiled convolution per input shape (1,024 by default). Datasets whose images differ
# in size (VOC, the toy data) would fill it, so resident memory would grow with the dataset; a small cache
# keeps memory flat (measured on 1,000 toy images: +4 % instead of +17 % from 200 to 1,000 images).
# Set before torch is imported; a user's own setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "8")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from wsl import CONF_DIR, REPO_ROOT, dist  # noqa: E402
from wsl.config_schema import register_schemas, validate_config  # noqa: E402
from wsl.errors import UserError  # noqa: E402

log = logging.getLogger("wsl")


def register_resolvers() -> None:
    """``${wsl_repo_root:}`` gives the repository root, so default paths never depend on the cwd."""
    if not OmegaConf.has_resolver("wsl_repo_root"):
        OmegaConf.register_new_resolver("wsl_repo_root", lambda: str(REPO_ROOT))


register_resolvers()
register_schemas()


def run_stage(cfg: DictConfig) -> dict:
    """Check ``cfg``, make sure the stage's inputs exist (see :data:`wsl.stages.NEEDS`), run the stage."""
    from wsl.stages import STAGES, load_stage

    validate_config(cfg)
    name = cfg.stage.name
    if name not in STAGES:
        raise UserError(f"stage={name}: unknown stage; allowed: {', '.join(sorted(STAGES))}")
    ensure_inputs(cfg)
    return load_stage(name).run(cfg)


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
    try:
        run_stage(cfg)
    except UserError as e:
        log.error("%s", e)
        sys.exit(2)
    finally:
        dist.destroy()


def _config_error(e: Exception) -> str:
    """Hydra's composition error ``e`` (several lines) as one, in :func:`wsl.config_schema.validate_config`'s
    format: ``invalid configuration: <key>=<value>: expected <what is allowed>``."""
    import dataclasses
    import difflib
    import re

    from hydra.errors import MissingConfigException
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError

    cause, text = e.__cause__, str(e)
    if isinstance(e, MissingConfigException) and e.options is not None and e.missing_cfg_file:
        group, _, name = e.missing_cfg_file.rpartition("/")  # an unknown option; bases (_*) are not options
        options = ", ".join(o for o in e.options if not o.startswith("_"))
        return f"invalid configuration: {group}={name}: expected one of {options}"
    key = getattr(cause, "full_key", None)
    if not key:
        lines = [line.strip() for line in text.splitlines() if line.strip() and "hydra.cc/docs" not in line]
        where = f"{e.override}: cannot parse (" if getattr(e, "override", None) else "("  # a syntax error
        return f"invalid configuration: {where}{': '.join(lines)})"
    head = f"{key}={text.partition(key + '=')[2].splitlines()[0]}" if key + "=" in text else key
    schema = getattr(cause, "object_type", None)
    typed = dataclasses.is_dataclass(schema)
    fields = {f.name: str(f.type) for f in dataclasses.fields(schema)} if typed else {}
    if isinstance(cause, ConfigAttributeError | ConfigKeyError):
        parent = key.rpartition(".")[0]
        close = difflib.get_close_matches(str(cause.key), fields, n=1)
        hint = f" (did you mean {'.'.join(filter(None, [parent, close[0]]))}?)" if close else ""
        allowed = f"expected one of {', '.join(fields)}" if fields else f"to add it: +{head}"
        return f"invalid configuration: {head}: unknown key{hint}, {allowed}"
    msg = str(getattr(cause, "msg", cause)).splitlines()[0]
    choices = re.search(r"expected one of \[(.*)\]", msg)
    if choices:
        expected = f"one of {choices[1]}"
    elif str(cause.key) in fields:  # int, bool, float, str, list[float], int | None, ...
        expected = re.sub(r"list\[(\w+)\]", r"a list of \1", fields[str(cause.key)])
        expected = expected.replace(" | None", " or null")
    else:
        expected = f"a valid value ({msg})"
    return f"invalid configuration: {head}: expected {expected}"


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
        print(_config_error(e), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
