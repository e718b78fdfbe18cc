"""Official pytorch-CycleGAN-and-pix2pix state dicts -> i2i state dicts: a mapping of names.

The official networks and i2i's compute the same functions with the same parameters; only the
module trees differ, and only for the U-Net (the official one nests
``UnetSkipConnectionBlock`` s, i2i keeps flat ``encoder``/``decoder`` lists) and the PixelGAN
(official ``net``, i2i ``model``). ResNet generators and PatchGANs have identical keys.

Where the official code gives a conv no bias and i2i gives it one (the official ``use_bias``
is true for ``norm="instance"`` only; i2i's is true unless ``norm="batch"``; i2i's PixelGAN
logit conv always has one), the converted bias is zero: the same function. Official files
saved through ``DataParallel`` (keys ``module.*``), BatchNorm files without
``num_batches_tracked`` (PyTorch < 0.4.1) and old InstanceNorm files with running statistics
(which the official loader deletes too) are accepted.

>>> unet_official_name("encoder.2.1", num_downs=8)
'model.model.1.model.3.model.1'
>>> unet_official_name("decoder.7.1", num_downs=8)
'model.model.3'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

#: i2i registry name -> official network family it converts from.
FAMILIES = {
    "unet_256": "unet",
    "unet_128": "unet",
    "resnet_9blocks": "resnet",
    "resnet_6blocks": "resnet",
    "pixel": "pixel",
    "patch16": "nlayer",
    "patch34": "nlayer",
    "patch70": "nlayer",
    "image286": "nlayer",
}

#: Statistics an InstanceNorm of old official files carries; the official loader drops them.
_INSTANCE_STATS = ("running_mean", "running_var", "num_batches_tracked")
_SHOWN = 5  # keys listed per kind of mismatch


class OfficialFileError(ValueError):
    """An official ``.pth`` file does not match the network it should hold; names the file."""


def unet_official_name(path: str, *, num_downs: int) -> str:
    """The official module path of i2i U-Net module ``path`` (``encoder.i.j``/``decoder.i.j``).

    Level ``k`` (0 = outermost) of the official U-Net sits at ``model.model`` followed by
    ``.1.model`` once and ``.3.model`` ``k - 1`` times. Its down path is at the same indices as
    i2i's encoder block ``k``; its up path follows the submodule: 2 indices further for the
    outermost and innermost levels, 4 for the others (the down conv, norm and submodule first).

    >>> unet_official_name("encoder.0.0", num_downs=7), unet_official_name("decoder.0.2", num_downs=7)
    ('model.model.0', 'model.model.1.model.3.model.3.model.3.model.3.model.3.model.4')
    """
    part, block, rest = path.split(".", 2)
    index, *tail = rest.split(".", 1)
    level = int(block) if part == "encoder" else num_downs - 1 - int(block)
    prefix = "model.model" + "".join(
        ".1.model" if k == 1 else ".3.model" for k in range(1, level + 1)
    )
    offset = 0
    if part == "decoder":
        offset = 2 if level in (0, num_downs - 1) else 4
    return ".".join([prefix, str(int(index) + offset), *tail])


def _official_namer(family: str, model: nn.Module) -> Callable[[str], str]:
    if family == "unet":
        return lambda path: unet_official_name(path, num_downs=model.num_downs)
    if family == "pixel":
        return lambda path: re.sub(r"^model\.", "net.", path)
    return lambda path: path  # resnet, nlayer: the same tree


def _always_biased(family: str, model: nn.Module) -> set[str]:
    """i2i conv paths that have a bias in the official network whatever the norm."""
    convs = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    if family == "unet":
        return {f"decoder.{model.num_downs - 1}.1"}  # the outermost up conv
    if family == "nlayer":
        return {convs[0], convs[-1]}
    if family == "pixel":
        return {convs[0]}
    return {convs[-1]}  # resnet


def official_to_i2i(
    state: Mapping[str, Any],
    model: nn.Module,
    *,
    family: str,
    norm: str,
    source: str,
    network: str,
) -> dict[str, Tensor]:
    """``model``'s state dict with the values of the official ``state``, checked key by key.

    ``model`` is the i2i network the official one should match (built with the same options);
    ``source`` (the file) and ``network`` (e.g. ``"official unet_256 generator (...)"``) go
    into the :class:`OfficialFileError` raised for missing, unexpected or misshapen entries.
    """
    if not isinstance(state, Mapping) or not state:
        raise OfficialFileError(
            f"{source} holds {type(state).__name__}, not a state dict of the {network}"
        )
    bad = [k for k, v in state.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise OfficialFileError(
            f"{source} is not a state dict of tensors (entry {bad[0]!r} is "
            f"{type(state[bad[0]]).__name__}); expected the {network}"
        )
    keys = list(state)
    if all(k.startswith("module.") for k in keys):  # saved through DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    namer = _official_namer(family, model)
    modules = dict(model.named_modules())
    instance_norms = {namer(n) for n, m in modules.items() if isinstance(m, nn.InstanceNorm2d)}
    state = {
        k: v
        for k, v in state.items()
        if not (k.rpartition(".")[0] in instance_norms and k.rpartition(".")[2] in _INSTANCE_STATS)
    }

    target = model.state_dict()
    biased = _always_biased(family, model)
    official_name: dict[str, str] = {}
    zero_filled: set[str] = set()
    for key in target:
        path, _, leaf = key.rpartition(".")
        official_name[key] = f"{namer(path)}.{leaf}"
        conv = isinstance(modules[path], (nn.Conv2d, nn.ConvTranspose2d))
        if conv and leaf == "bias" and norm != "instance" and path not in biased:
            zero_filled.add(key)
    expected = {official_name[k]: k for k in target if k not in zero_filled}
    optional = {official_name[k] for k in target if k.endswith(".num_batches_tracked")}

    missing = [n for n in expected if n not in state and n not in optional]
    unexpected = [n for n in state if n not in expected]
    misshapen = [
        n
        for n in expected
        if n in state and tuple(state[n].shape) != tuple(target[expected[n]].shape)
    ]
    if missing or unexpected or misshapen:
        problems = []
        if missing:
            problems.append(f"missing {_listed(missing)}")
        if unexpected:
            problems.append(f"unexpected {_listed(unexpected)}")
        if misshapen:
            shapes = [
                f"{n} (file {_shape(state[n])}, expected {_shape(target[expected[n]])})"
                for n in misshapen[:_SHOWN]
            ]
            more = f" and {len(misshapen) - _SHOWN} more" if len(misshapen) > _SHOWN else ""
            problems.append(f"wrong shapes: {', '.join(shapes)}{more}")
        raise OfficialFileError(
            f"{source} does not match the {network}: {'; '.join(problems)}. Give the flags it "
            "was trained with (--netG; --netD, --n-layers-D; --norm; --ngf, --ndf) and a task "
            "whose channels are its --input_nc and --output_nc."
        )

    out = {}
    for key, like in target.items():
        name = official_name[key]
        if key in zero_filled or name not in state:  # zero bias, or an old num_batches_tracked
            out[key] = torch.zeros_like(like)
        else:
            out[key] = state[name].detach().to(dtype=like.dtype).clone()
    return out


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return f"key{'s' if len(names) > 1 else ''} {', '.join(names[:_SHOWN])}{more}"


def _shape(t: Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"
