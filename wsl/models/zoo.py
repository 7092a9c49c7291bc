"""Any timm model or torchvision classifier as a wsl classifier (``model=timm`` / ``model=torchvision``).

:func:`build_timm` and :func:`build_torchvision` create the network by name with a new head of
``num_classes`` outputs, optionally with pretrained backbone weights (the library's download, or a local
file: :func:`wsl.models.weights.load_backbone_weights`), and attach ``cam_layer``
(:func:`wsl.cam.reshape.attach_cam_layer`): a parameter-free module that shows the family's CAM layer as
``(B, C, h, w)``, transformer tokens and channels-last maps reshaped, so that every CAM method works on
``target_layer="cam_layer"`` with no reshape code. The default layer per family (:func:`timm_source`,
:data:`TORCHVISION_SOURCES`):

| family | CAM layer | layout |
| --- | --- | --- |
| timm ViT / DeiT / EVA / BEiT (``blocks``, prefix tokens) | ``blocks.<last>.norm1`` | tokens, no prefix |
| timm Swin (channels-last) | ``norm`` (the last map before pooling) | NHWC |
| any other timm model | ``feature_info[-1]`` (``stages.3``, ``layer4``, ``blocks.6``) | NCHW |
| torchvision (:data:`TORCHVISION_SOURCES`) | ``layer4``, ``features``, ... | NCHW (Swin: NHWC) |
"""

from __future__ import annotations

import difflib
import logging

from torch import nn

from wsl import io
from wsl.cam.reshape import Layout, attach_cam_layer
from wsl.errors import UserError
from wsl.models.weights import load_backbone_weights

log = logging.getLogger(__name__)

# torchvision classifier families: arch prefix -> (CAM layer, layout); first match wins
TORCHVISION_SOURCES: tuple[tuple[str, str, Layout], ...] = (
    ("resnet", "layer4", "nchw"),
    ("resnext", "layer4", "nchw"),
    ("wide_resnet", "layer4", "nchw"),
    ("regnet", "trunk_output", "nchw"),
    ("vgg", "features", "nchw"),
    ("alexnet", "features", "nchw"),
    ("squeezenet", "features", "nchw"),
    ("mobilenet", "features", "nchw"),
    ("efficientnet", "features", "nchw"),
    ("densenet", "features", "nchw"),
    ("convnext", "features", "nchw"),
    ("mnasnet", "layers", "nchw"),
    ("shufflenet", "conv5", "nchw"),
    ("googlenet", "inception5b", "nchw"),
    ("inception", "Mixed_7c", "nchw"),
    ("maxvit", "blocks", "nchw"),
    ("swin", "norm", "nhwc"),
)


def _close(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    return f"; close names: {', '.join(close)}" if close else ""


def _attach(model: nn.Module, source: str | None, default: tuple[str, Layout], what: str,
            prefix_tokens: int = 0, patch_size: tuple[int, int] | None = None) -> nn.Module:  # fmt: skip
    """``cam_layer`` on ``source`` (None / "auto": the family default); an unknown name is one line."""
    name, layout = default
    if source not in (None, "auto"):
        name, layout = str(source), (default[1] if default[1] == "nhwc" else None)
    try:
        attach_cam_layer(model, name, layout, prefix_tokens if layout != "nchw" else 0, patch_size)
    except ValueError as e:
        raise UserError(f"{what}: model.source_layer: {e}") from None
    return model


def _load_file(model: nn.Module, weights: str | None, num_classes: int) -> None:
    if weights:
        load_backbone_weights(model, io.load_state_dict(weights), str(weights), num_classes)


# ------------------------------------------------------------------------------------------------ timm


def timm_source(model: nn.Module) -> tuple[str, Layout, int, tuple[int, int] | None]:
    """The default CAM layer of a timm model: ``(name, layout, prefix_tokens, patch_size)``."""
    blocks = getattr(model, "blocks", None)
    prefix = getattr(model, "num_prefix_tokens", None)
    if isinstance(blocks, nn.Sequential | nn.ModuleList) and prefix is not None and len(blocks):
        patch = getattr(getattr(model, "patch_embed", None), "patch_size", None)
        last = f"blocks.{len(blocks) - 1}"
        name = f"{last}.norm1" if f"{last}.norm1" in dict(model.named_modules()) else last
        return name, "tokens", int(prefix), tuple(patch) if patch is not None else None
    if str(getattr(model, "output_fmt", "NCHW")) == "NHWC":
        return ("norm" if isinstance(getattr(model, "norm", None), nn.Module) else
                model.feature_info[-1]["module"]), "nhwc", 0, None  # fmt: skip
    info = getattr(model, "feature_info", None)
    if not info:
        raise UserError(f"timm model {type(model).__name__} lists no feature_info: set model.source_layer")
    return str(info[-1]["module"]), "nchw", 0, None


def _timm_create(arch: str, num_classes: int, pretrained: bool) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise UserError("model=timm needs the timm package: pip install 'wsl[timm]'") from None

    if not timm.is_model(arch.split(".")[0]):
        raise UserError(f"unknown timm model {arch!r}{_close(arch, timm.list_models())}")
    # ViTs take any image size (the toy images are 144-176 px, not 224): position embeddings resampled to
    # the patch grid, the image padded to a multiple of the patch size (right / bottom, < 1 patch)
    for extra in ({"dynamic_img_size": True, "dynamic_img_pad": True}, {"dynamic_img_size": True}, {}):
        try:
            return timm.create_model(arch, pretrained=pretrained, num_classes=num_classes, **extra)
        except TypeError as e:
            if "dynamic_img" not in str(e):
                raise
        except (RuntimeError, OSError, ValueError, ConnectionError) as e:
            if not pretrained:
                raise
            why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise UserError(
                f"timm could not get the pretrained weights of {arch} ({type(e).__name__}: {why}); offline, "
                f"save them on a machine with internet (torch.save(timm.create_model({arch!r}, "
                "pretrained=True).state_dict(), 'w.pth')) and pass model.weights=w.pth model.pretrained=false"
            ) from None
    raise AssertionError("unreachable")


def build_timm(arch: str, num_classes: int, pretrained: bool = False, weights: str | None = None,
               source_layer: str | None = "auto") -> nn.Module:  # fmt: skip
    """timm's ``arch`` with a head of ``num_classes`` and ``cam_layer`` on ``source_layer`` (see module).

    ``pretrained``: timm's weights (hub download; offline: one line saying what to do). ``weights``: a
    local state dict file for the backbone (head keys that do not fit are dropped, with a log line).
    """
    if pretrained and weights:
        raise UserError("model.pretrained=true and model.weights both give weights: choose one")
    model = _timm_create(str(arch), int(num_classes), bool(pretrained))
    embed = getattr(model, "patch_embed", None)
    if getattr(embed, "dynamic_img_pad", True) is False:
        # Swin does not pass dynamic_img_pad on to its PatchEmbed (timm 1.0): without it an image side that
        # is not a multiple of the patch size (the toy images: any of 144-176 px) is an assertion error
        embed.dynamic_img_pad = True
    _load_file(model, weights, int(num_classes))
    name, layout, prefix, patch = timm_source(model)
    return _attach(model, source_layer, (name, layout), f"model.arch={arch}", prefix, patch)


# ----------------------------------------------------------------------------------------- torchvision


def torchvision_source(arch: str) -> tuple[str, Layout]:
    """The default CAM layer of a torchvision classifier family (:data:`TORCHVISION_SOURCES`)."""
    for prefix, name, layout in TORCHVISION_SOURCES:
        if arch.startswith(prefix):
            return name, layout
    raise UserError(f"no default CAM layer for torchvision's {arch}: set model.source_layer")


def build_torchvision(arch: str, num_classes: int, pretrained: bool = False, weights: str | None = None,
                      source_layer: str | None = "auto") -> nn.Module:  # fmt: skip
    """torchvision's classifier ``arch`` with a head of ``num_classes`` and ``cam_layer`` (see module).

    ``pretrained``: torchvision's ImageNet weights (torch hub cache; offline: one line naming the file);
    ``weights``: a local state dict file. Either way head keys that do not fit are dropped (log line).
    """
    import torchvision

    arch = str(arch)
    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise UserError(f"unknown torchvision classifier {arch!r}{_close(arch, names)}")
    if arch.startswith("vit_"):
        raise UserError(
            f"torchvision's {arch} accepts one fixed image size only: use model=timm (any image size), "
            "e.g. model=timm model.arch=vit_base_patch16_224"
        )
    if pretrained and weights:
        raise UserError("model.pretrained=true and model.weights both give weights: choose one")
    kwargs = {"aux_logits": False, "init_weights": True} if arch in ("googlenet", "inception_v3") else {}
    model = torchvision.models.get_model(arch, weights=None, num_classes=int(num_classes), **kwargs)
    if pretrained:
        from wsl.models.classifier import load_imagenet_state

        load_backbone_weights(model, load_imagenet_state(arch), f"torchvision's {arch} weights", num_classes)
    _load_file(model, weights, int(num_classes))
    return _attach(model, source_layer, torchvision_source(arch), f"model.arch={arch}")


__all__ = ["TORCHVISION_SOURCES", "build_timm", "build_torchvision", "timm_source", "torchvision_source"]
