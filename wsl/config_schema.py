"""Typed schemas of ``conf/`` and the start-up check of a composed configuration.

Every group option links its schema from its defaults list (``- /schema/stage/cams@_here_``), so Hydra
itself rejects a value of the wrong type (``stage.batch_size=abc``), an unknown key (``stage.batch_sizee=3``)
and a value outside a fixed choice (``stage.box_mode=biggest``) while it composes. The values live in the
YAML files only: schema fields have no defaults. What a type cannot say (``stage.batch_size >= 1``) is the
``range`` of a field, checked with a few cross-key rules by :func:`validate_config` before a stage runs.

Fixed choices are :class:`enum.StrEnum` fields: ``cfg.stage.task == "all"``, ``str(cfg.cam.method)`` and
f-strings give the plain name; ``OmegaConf.to_container(cfg, enum_to_str=True)`` gives plain ``str``.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from wsl import REPO_ROOT
from wsl.errors import UserError

__all__ = ["register_schemas", "validate_config"]


# ------------------------------------------------------------------------------------------ fixed choices


def _choices(name: str, values: str) -> type[enum.StrEnum]:
    """A fixed choice: a StrEnum whose members are named as their values."""
    return enum.StrEnum(name, values.split(), module=__name__)  # type: ignore[return-value]


CamMethod = _choices(
    "CamMethod",
    "cam gradcam hirescam gradcampp xgradcam layercam scorecam ablationcam eigencam "
    "guided_backprop guided_gradcam eigengradcam gradcam_elementwise fullgrad kpcacam finercam "
    "shapleycam randomcam smoothgradcampp sscam iscam",
)
CamScore = _choices("CamScore", "logit_softmax probability")
CamTarget = _choices("CamTarget", "logit softmax sigmoid")
SanityMode = _choices("SanityMode", "layers conv_linear")
KpcaKernel = _choices("KpcaKernel", "sigmoid rbf poly linear cosine")
FinerBase = _choices("FinerBase", "gradcam hirescam gradcampp xgradcam layercam")
EvalTask = _choices("EvalTask", "all localization segmentation")
ThresholdMethod = _choices("ThresholdMethod", "relative otsu percentile")
BoxMode = _choices("BoxMode", "largest all")
Background = _choices("Background", "threshold saliency irn")
Overlap = _choices("Overlap", "smaller argmax")
Loss = _choices("Loss", "bce softmargin")
Refiner = _choices("Refiner", "sec randomwalk")
AffinityLoss = _choices("AffinityLoss", "boundary affinity")


# ----------------------------------------------------------------------------------------------- ranges


@dataclass(frozen=True)
class _Range:
    """lo <= v <= hi (a bound left out is open-ended; ``*_open`` makes it strict). None always passes."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def holds(self, v: float) -> bool:
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def __str__(self) -> str:
        if self.lo is not None and self.hi is not None:
            return f"in {'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}{')' if self.hi_open else ']'}"
        if self.lo is not None:
            return f"{'>' if self.lo_open else '>='} {self.lo:g}"
        return f"{'<' if self.hi_open else '<='} {self.hi:g}"


def _r(lo: float | None = None, hi: float | None = None, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A schema field (no default: the YAML gives the value) whose value must lie in this range."""
    return field(metadata={"range": _Range(lo, hi, lo_open, hi_open)})


def _count() -> Any:  # batch sizes, strides, epochs, iterations, steps: >= 1
    return _r(1)


def _nonneg() -> Any:  # worker counts, top_k, image counts: >= 0
    return _r(0)


def _fraction() -> Any:  # thresholds that are fractions: [0, 1]
    return _r(0, 1)


def _step() -> Any:  # sweep steps: (0, 1]
    return _r(0, 1, lo_open=True)


def _positive() -> Any:  # learning rates, scales: > 0
    return _r(0, lo_open=True)


# ---------------------------------------------------------------------------------------------- schemas


@dataclass
class ConfigSchema:
    """conf/config.yaml: the groups (each typed by its own option's schema) and the root keys."""

    paths: Any
    dataset: Any
    model: Any
    segmodel: Any
    cam: Any
    stage: Any
    run: str
    seed: int
    device: str  # checked in validate_config: auto, cpu, mps, cuda or cuda:<n>
    num_workers: int = _nonneg()
    threads: int | None = _count()


@dataclass
class PathsSchema:
    output_root: str
    data_root: str
    run_dir: str


@dataclass
class DatasetSchema:
    name: str
    num_classes: int = _count()
    class_names: list[str]  # as many as num_classes (validate_config)
    train_split: str
    val_split: str
    mean: list[float]
    std: list[float] = _positive()
    prepare: dict[str, Any] | None  # a _target_ node, or null
    loader: dict[str, Any]  # a _target_ node
    min_side: int = _count()  # pixels: smaller images are bad items
    max_side: int | None = _r(16)  # pixels: longer images are downscaled for the model (memory guard)


@dataclass
class ModelSchema:
    name: str
    arch: str
    target_layer: Any  # a module name, or a list of names (maps combined; validate_config)
    source_layer: str | None  # model=timm / torchvision: the layer cam_layer shows (auto: family default)
    pretrained: bool
    weights: str | None  # a local file of pretrained weights
    build: dict[str, Any]
    checkpoint: str | None


@dataclass
class SecScheduleSchema:
    iterations: int = _count()
    batch_size: int = _count()
    lr: float = _positive()
    lr_step: int = _count()
    weight_decay: float = _nonneg()


@dataclass
class SegModelSchema:
    name: str
    build: dict[str, Any]
    pretrained: bool
    input_size: int = _count()
    sec: SecScheduleSchema


@dataclass
class CamSchema:
    name: str
    method: CamMethod
    target_layer: Any  # a module name, or a list of names (maps combined; validate_config)
    target: CamTarget
    relu: bool
    batch_size: int = _count()
    aug_smooth: bool
    eigen_smooth: bool
    score: CamScore
    samples: int | None = _count()
    noise_std: float | None = _nonneg()
    seed: int
    kernel: KpcaKernel
    gamma: float | None = _positive()
    finer_alpha: float
    finer_compare: list[int] = _count()
    finer_base: FinerBase


@dataclass
class TrainStage:
    name: str
    epochs: int = _count()
    batch_size: int = _count()
    input_size: int = _count()
    min_crop_area: float = _r(0, 1, lo_open=True)
    jitter: float = _nonneg()
    lr: float = _positive()
    weight_decay: float = _nonneg()
    warmup_steps: int = _nonneg()
    loss: Loss
    overwrite: bool
    max_failed: float = _fraction()


@dataclass
class CamsStage:
    name: str
    split: str
    all_classes: bool
    top_k: int = _nonneg()
    scales: list[float] = _positive()
    flip: bool
    stride: int = _count()
    batch_size: int = _count()
    bf16: bool
    channels_last: bool
    limit: int | None = _count()
    overwrite: bool
    miou_threshold: float = _fraction()
    max_failed: float = _fraction()
    max_grad_mb: float | None = _positive()  # MiB of class gradients at once; null: from free memory


@dataclass
class BoxesStage:
    name: str
    split: str
    threshold_method: ThresholdMethod
    threshold: float  # relative: [0, 1]; percentile: [0, 100] (validate_config)
    box_mode: BoxMode
    max_failed: float = _fraction()
    overwrite: bool


@dataclass
class EvalStage:
    name: str
    split: str
    task: EvalTask
    loc_threshold: float = _fraction()
    iou_threshold: float = _fraction()
    box_acc_step: float = _step()
    pointing_tolerance: int = _nonneg()
    miou_threshold: float = _fraction()
    sweep_start: float = _fraction()
    sweep_stop: float = _fraction()
    sweep_step: float = _step()
    max_failed: float = _fraction()
    networks: list[str]  # sec | segtrain (validate_config)
    net_scales: list[float] = _positive()
    net_flip: bool
    net_crf: bool
    crf_processes: int = _nonneg()


@dataclass
class SeedsStage:
    name: str
    split: str
    background: Background
    fg_thresh: float = _fraction()
    bg_thresh: float = _fraction()
    bg_fraction: float = _fraction()
    saliency_layer: str | None
    irn_fg: float = _fraction()
    irn_bg: float = _fraction()
    overlap: Overlap
    crf_processes: int = _nonneg()
    limit: int | None = _count()
    overwrite: bool
    max_failed: float = _fraction()


@dataclass
class SecLossWeights:
    seed: float = _nonneg()
    expand: float = _nonneg()
    constrain: float = _nonneg()


@dataclass
class SecStage:
    name: str
    split: str
    iterations: int = _count()
    batch_size: int = _count()
    lr: float = _positive()
    lr_step: int = _count()
    lr_gamma: float = _positive()
    momentum: float = _r(0, 1, hi_open=True)
    weight_decay: float = _nonneg()
    d_pos: float = _fraction()
    d_neg: float = _fraction()
    d_bg: float = _fraction()
    weights: SecLossWeights
    crf_scale: float | None = _positive()
    crf_iterations: int = _count()
    crf_processes: int = _nonneg()
    log_every: int = _count()
    checkpoint_every: int = _count()
    overwrite: bool


@dataclass
class LabelsStage:
    name: str
    split: str
    checkpoint: str | None
    scales: list[float] = _positive()
    flip: bool
    crf: bool
    crf_iterations: int = _count()
    crf_processes: int = _nonneg()
    prob_floor: float = _fraction()
    restrict_to_labels: bool
    batch_size: int = _count()
    list_image_prefix: str
    list_image_suffix: str
    list_label_prefix: str
    limit: int | None = _count()
    overwrite: bool
    max_failed: float = _fraction()


@dataclass
class SegtrainStage:
    name: str
    split: str
    labels: Refiner
    iterations: int = _count()
    batch_size: int = _count()
    micro_batches: int | None = _count()
    lr: float = _positive()
    lr_power: float = _positive()
    momentum: float = _r(0, 1, hi_open=True)
    weight_decay: float = _nonneg()
    crop_size: int = _count()
    scale_range: list[float] = _positive()
    flip: bool
    log_every: int = _count()
    checkpoint_every: int = _count()
    overwrite: bool


@dataclass
class AffinityStage:
    name: str
    split: str
    irn_fg: float = _fraction()
    irn_bg: float = _fraction()
    crf_processes: int = _nonneg()
    loss: AffinityLoss
    radius: int = _r(2)
    width: int = _count()
    embed_dim: int = _count()
    crop_size: int = _r(4)
    scale_range: list[float] = _positive()
    flip: bool
    epochs: int = _count()
    batch_size: int = _count()
    lr: float = _positive()
    lr_power: float = _positive()
    momentum: float = _r(0, 1, hi_open=True)
    weight_decay: float = _nonneg()
    log_every: int = _count()
    checkpoint_every: int = _count()
    limit: int | None = _count()
    overwrite: bool
    max_failed: float = _fraction()


@dataclass
class RandomwalkStage:
    name: str
    split: str
    checkpoint: str | None
    radius: int = _r(2)
    beta: float = _positive()
    exp_times: int = _nonneg()
    bg_threshold: float = _fraction()
    flip: bool
    crf: bool
    crf_iterations: int = _count()
    crf_processes: int = _nonneg()
    prob_floor: float = _fraction()
    list_image_prefix: str
    list_image_suffix: str
    list_label_prefix: str
    limit: int | None = _count()
    overwrite: bool
    max_failed: float = _fraction()


@dataclass
class FaithfulnessProbe:
    images: int = _nonneg()
    steps: int = _count()


@dataclass
class SanityProbe:
    mode: SanityMode
    images: int = _nonneg()
    blocks: list[str] | None
    depth: int = _count()
    threshold: float = _r(-1, 1)  # a Spearman correlation


@dataclass
class Gallery:
    images: int = _nonneg()
    ids: list[str] | None


@dataclass
class BenchmarkStage:
    name: str
    split: str
    methods: list[str] | None  # CAM method names (validate_config)
    limit: int | None = _count()
    overwrite: bool
    faithfulness: FaithfulnessProbe
    sanity: SanityProbe
    cost_images: int = _nonneg()
    gallery: Gallery


@dataclass
class VisualizeStage:
    name: str
    split: str
    ids: list[str] | None
    limit: int | None = _count()
    methods: list[str] | None  # CAM method names (validate_config)
    layers: list[str] | None
    failures: int = _nonneg()
    score_threshold: float = _fraction()
    alpha: float = _fraction()


@dataclass
class ExplainStage:
    name: str
    image: str  # an image file or a folder of images (mandatory: ???)
    top_k: int = _count()
    alpha: float = _fraction()


STAGE_SCHEMAS: dict[str, type] = {
    "train": TrainStage,
    "cams": CamsStage,
    "boxes": BoxesStage,
    "eval": EvalStage,
    "seeds": SeedsStage,
    "sec": SecStage,
    "labels": LabelsStage,
    "segtrain": SegtrainStage,
    "affinity": AffinityStage,
    "randomwalk": RandomwalkStage,
    "benchmark": BenchmarkStage,
    "visualize": VisualizeStage,
    "explain": ExplainStage,
}
GROUP_SCHEMAS: dict[str, type] = {
    "paths": PathsSchema,
    "dataset": DatasetSchema,
    "model": ModelSchema,
    "segmodel": SegModelSchema,
    "cam": CamSchema,
}


def register_resolvers() -> None:
    """``${wsl_repo_root:}``: the checkout's root (default paths never depend on the cwd);
    ``${wsl_stage_table:}``: the stage table that ``--help`` prints."""
    if not OmegaConf.has_resolver("wsl_repo_root"):
        OmegaConf.register_new_resolver("wsl_repo_root", lambda: str(REPO_ROOT))
    if not OmegaConf.has_resolver("wsl_stage_table"):  # --help's table of the stages
        from wsl.stages import stage_table

        OmegaConf.register_new_resolver("wsl_stage_table", stage_table)


def register_schemas() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent): ``config_schema`` for conf/config.yaml,
    ``schema/<group>`` for each group and ``schema/stage/<stage>`` for each stage option."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=ConfigSchema)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(group="schema", name=group, node=schema)
    for stage, schema in STAGE_SCHEMAS.items():
        cs.store(group="schema/stage", name=stage, node=schema)


# ------------------------------------------------------------------------------------- start-up checks

_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _show(v: Any) -> str:
    """A value as a user would type it in an override: ``null``, ``true``, ``[1.0, 2.0]``, ``abc``."""
    if isinstance(v, ListConfig | DictConfig):
        v = OmegaConf.to_container(v)
    if isinstance(v, list):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return {None: "null", True: "true", False: "false"}.get(v, str(v)) if not _number(v) else repr(v)


def _check_missing(node: DictConfig | ListConfig, prefix: str, problems: list[str]) -> None:
    """Every mandatory value left at ``???`` (interpolations are not resolved: one to a ``???`` is not
    reported twice)."""
    keys = range(len(node)) if isinstance(node, ListConfig) else map(str, node)
    for key in keys:
        full = f"{prefix}[{key}]" if isinstance(key, int) else f"{prefix}{key}"
        if full == "hydra" or OmegaConf.is_interpolation(node, key):
            continue
        if OmegaConf.is_missing(node, key):
            problems.append(f"{full}=???: expected a value (mandatory)")
        elif isinstance(node[key], DictConfig | ListConfig):
            _check_missing(node[key], full if isinstance(node[key], ListConfig) else f"{full}.", problems)


def _check_ranges(node: DictConfig, prefix: str, problems: list[str]) -> None:
    """Every ``range`` field of the schema-typed nodes under ``node`` (interpolations resolved)."""
    schema = OmegaConf.get_type(node)
    if not dataclasses.is_dataclass(schema):
        return
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in map(str, node):
        full = f"{prefix}{key}"
        if full == "hydra" or OmegaConf.is_missing(node, key):
            continue
        try:
            value = node[key]
        except Exception as e:  # noqa: BLE001 - an interpolation that does not resolve
            problems.append(f"{full}: cannot be resolved ({str(e).splitlines()[0]})")
            continue
        if isinstance(value, DictConfig):
            _check_ranges(value, f"{full}.", problems)
            continue
        rng = fields[key].metadata.get("range") if key in fields else None
        if rng is None or value is None:
            continue
        if isinstance(value, ListConfig):
            ok = len(value) > 0 and all(_number(v) and rng.holds(v) for v in value)
            what = f"a non-empty list of numbers {rng}"
        else:
            ok, what = rng.holds(value), f"{'an int' if isinstance(value, int) else 'a number'} {rng}"
        if not ok:
            null = " or null" if "None" in str(fields[key].type) else ""
            problems.append(f"{full}={_show(value)}: expected {what}{null}")


def _cross_checks(cfg: DictConfig) -> list[str]:
    """The rules that involve more than one key, or a set of values the types do not carry."""
    problems = []
    device = cfg.get("device")
    if isinstance(device, str) and not _DEVICE.fullmatch(device):
        problems.append(f"device={device}: expected auto, cpu, mps, cuda or cuda:<n>")
    ds = cfg.get("dataset")
    counted = isinstance(ds, DictConfig) and not any(
        OmegaConf.is_missing(ds, k) for k in ("num_classes", "class_names")
    )
    if counted and len(ds.class_names) != ds.num_classes:
        problems.append(
            f"dataset.class_names=({len(ds.class_names)} names): expected {ds.num_classes} names "
            f"(dataset.num_classes={ds.num_classes})"
        )
    st = cfg.get("stage")
    kind = OmegaConf.get_type(st) if isinstance(st, DictConfig) else None
    if kind is BoxesStage and st.threshold_method != ThresholdMethod.otsu:
        top = 100 if st.threshold_method == ThresholdMethod.percentile else 1
        if not 0 <= st.threshold <= top:
            problems.append(
                f"stage.threshold={_show(st.threshold)}: expected a number in [0, {top}] "
                f"(stage.threshold_method={st.threshold_method})"
            )
    if kind is EvalStage and st.sweep_start > st.sweep_stop:
        problems.append(
            f"stage.sweep_stop={_show(st.sweep_stop)}: expected >= stage.sweep_start={_show(st.sweep_start)}"
        )
    if kind is EvalStage and any(n not in ("sec", "segtrain") for n in st.networks):
        problems.append(f"stage.networks={_show(st.networks)}: expected a list of sec, segtrain (or [])")
    if kind is SegtrainStage and (len(st.scale_range) != 2 or st.scale_range[0] > st.scale_range[1]):
        problems.append(f"stage.scale_range={_show(st.scale_range)}: expected [lo, hi] with 0 < lo <= hi")
    if kind is AffinityStage and (len(st.scale_range) != 2 or st.scale_range[0] > st.scale_range[1]):
        problems.append(f"stage.scale_range={_show(st.scale_range)}: expected [lo, hi] with 0 < lo <= hi")
    if kind is AffinityStage and st.crop_size % 4:
        problems.append(f"stage.crop_size={st.crop_size}: expected a multiple of 4 (the grid's stride)")
    for group in ("model", "cam"):  # target_layer: a name or a non-empty list of names
        node = cfg.get(group)
        try:
            layer = node.get("target_layer") if isinstance(node, DictConfig) else None
        except Exception:  # noqa: BLE001 - missing (???): _check_missing reports it
            layer = None
        named = isinstance(layer, str) or (
            isinstance(layer, ListConfig) and len(layer) > 0 and all(isinstance(v, str) for v in layer)
        )
        if layer is not None and not named:
            problems.append(f"{group}.target_layer={_show(layer)}: expected a module name or a list of names")
    if kind in (BenchmarkStage, VisualizeStage) and st.methods is not None:
        if not st.methods or any(m not in CamMethod.__members__ for m in st.methods):
            allowed = "null or a non-empty list of " + ", ".join(CamMethod)
            problems.append(f"stage.methods={_show(st.methods)}: expected {allowed}")
    return problems


def validate_config(cfg: DictConfig) -> None:
    """Raise :class:`~wsl.errors.UserError` if ``cfg`` has a mandatory value left at ``???``, a value out of
    its range or a broken cross-key rule: ONE line, ``invalid configuration: <key>=<value>: expected
    <what is allowed>``, every problem joined by ``; ``.

    Types, unknown keys and fixed choices were already checked by Hydra when it composed ``cfg``."""
    problems: list[str] = []
    _check_missing(cfg, "", problems)
    _check_ranges(cfg, "", problems)
    problems += _cross_checks(cfg)
    if problems:
        raise UserError("invalid configuration: " + "; ".join(problems))


def composition_error_line(e: Exception) -> str:
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
