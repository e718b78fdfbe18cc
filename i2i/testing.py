"""Conformance checks for components, for i2i's own tests and for plugin authors.

Each check builds a component on tiny inputs and raises :class:`ConformanceError` (an
``AssertionError``) naming the component when a contract is broken: output shapes, finite values,
gradients reaching every trainable parameter. Use them in a plugin's test suite::

    from i2i.testing import check_generator
    check_generator(make_my_generator, 3, 3, ngf=8)

>>> from i2i.models import unet_128, patch70
>>> check_generator(unet_128, 1, 2, ngf=4)["output_shape"]
(2, 2, 128, 128)
>>> check_discriminator(patch70, 6, ndf=8)["receptive_field"]
70
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from i2i.registry import Entry
from i2i.task import Task

__all__ = [
    "ConformanceError",
    "check_discriminator",
    "check_generator",
    "check_gradients",
    "check_loss",
    "check_task",
    "measure_receptive_field",
]


class ConformanceError(AssertionError):
    """A component broke its contract; the message names the component."""


Factory = Callable[..., Any]


def _resolve(factory_or_entry: Factory | Entry, name: str | None) -> tuple[Factory, str, dict]:
    if isinstance(factory_or_entry, Entry):
        entry = factory_or_entry
        return entry.obj, name or f"{entry.kind} {entry.name!r}", dict(entry.meta)
    label = name or getattr(factory_or_entry, "__qualname__", repr(factory_or_entry))
    return factory_or_entry, repr(label) if name is None else name, {}


def _fail(component: str, message: str) -> None:
    raise ConformanceError(f"{component}: {message}")


def _check_finite(component: str, what: str, t: Tensor) -> None:
    if not torch.isfinite(t).all():
        _fail(component, f"{what} has non-finite values")


def check_gradients(module: nn.Module, component: str = "module") -> None:
    """Every parameter that requires grad has a finite ``.grad`` (call after ``backward``).

    >>> m = nn.Linear(2, 1)
    >>> m(torch.ones(1, 2)).sum().backward()
    >>> check_gradients(m, "demo")
    """
    missing, bad = [], []
    for pname, p in module.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            missing.append(pname)
        elif not torch.isfinite(p.grad).all():
            bad.append(pname)
    if missing:
        _fail(
            component,
            f"{len(missing)} parameters get no gradient (unused in forward?), e.g. {missing[:5]}",
        )
    if bad:
        _fail(component, f"non-finite gradients in {bad[:5]}")


def _int_attr(module: nn.Module, attr: str, component: str) -> int:
    value = getattr(module, attr, None)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        _fail(component, f"expected a positive int attribute {attr!r}, got {value!r}")
    return value


def check_generator(
    factory_or_entry: Factory | Entry,
    in_channels: int = 3,
    out_channels: int = 3,
    *,
    size: int | tuple[int, int] | None = None,
    batch: int = 2,
    output_range: tuple[float, float] | None = (-1.0, 1.0),
    name: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Build a generator and check the generator contract on a tiny batch.

    ``size`` defaults to the smallest multiple of ``size_multiple`` that is at least 32 (use tiny
    keywords such as ``ngf=4`` for deep nets). Checks: ``size_multiple`` (and registry meta),
    output ``(batch, out_channels, H, W)``, finite, within ``output_range``, gradients reach
    every parameter, eval-mode forward works. Returns what it measured.

    >>> from i2i.models import encoder_decoder_128
    >>> check_generator(encoder_decoder_128, 3, 1, ngf=4, batch=1)["size_multiple"]
    128
    """
    factory, component, meta = _resolve(factory_or_entry, name)
    try:
        model = factory(in_channels=in_channels, out_channels=out_channels, **kwargs)
    except Exception as exc:
        raise ConformanceError(
            f"{component}: building with in_channels={in_channels}, "
            f"out_channels={out_channels}, {kwargs} failed: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        _fail(component, f"factory returned {type(model).__name__}, expected an nn.Module")
    multiple = _int_attr(model, "size_multiple", component)
    if "size_multiple" in meta and meta["size_multiple"] != multiple:
        _fail(
            component, f"registered size_multiple={meta['size_multiple']} but module has {multiple}"
        )
    if size is None:
        size = multiple * math.ceil(32 / multiple)
    h, w = (size, size) if isinstance(size, int) else size
    if h % multiple or w % multiple:
        _fail(component, f"test size {h}x{w} is not a multiple of size_multiple={multiple}")
    x = torch.rand(batch, in_channels, h, w) * 2 - 1
    model.train()
    out = model(x)
    expected = (batch, out_channels, h, w)
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        _fail(component, f"expected output {expected} for input {tuple(x.shape)}, got {got}")
    _check_finite(component, "output", out)
    if output_range is not None:
        lo, hi = output_range
        if out.min() < lo or out.max() > hi:
            _fail(
                component,
                f"output outside [{lo}, {hi}]: [{out.min().item():.3g}, {out.max().item():.3g}]",
            )
    model.zero_grad(set_to_none=True)
    out.square().mean().backward()
    check_gradients(model, component)
    model.eval()
    with torch.no_grad():
        out_eval = model(x)
    if tuple(out_eval.shape) != expected:
        _fail(component, f"eval mode: expected output {expected}, got {tuple(out_eval.shape)}")
    _check_finite(component, "eval-mode output", out_eval)
    return {"size_multiple": multiple, "output_shape": expected, "module": model}


def _strip_norms(module: nn.Module) -> None:
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    for child_name, child in module.named_children():
        if isinstance(child, norms):
            setattr(module, child_name, nn.Identity())
        else:
            _strip_norms(child)


def measure_receptive_field(
    discriminator: nn.Module, in_channels: int, *, size: int | None = None, max_size: int = 1024
) -> int:
    """Measure the side of the input region one central logit depends on.

    A float64 copy has its norm layers removed (instance norm would couple every pixel) and every
    conv weight set to ``1 / fan_in`` with zero bias, so with any (leaky) ReLU no gradient cancels
    or vanishes on a positive input: the gradient support of the central logit is exactly its
    field. The input grows until the support no longer touches the border.

    >>> from i2i.models import patch34
    >>> measure_receptive_field(patch34(3, ndf=4), 3)
    34
    """
    model = copy.deepcopy(discriminator).double().eval()
    _strip_norms(model)
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd):
            with torch.no_grad():
                m.weight.fill_(1.0 / max(1, m.weight[0].numel()))
                if m.bias is not None:
                    m.bias.zero_()
    declared = getattr(discriminator, "receptive_field", 16)
    if size is None:
        size = 32
        while size < 1.5 * declared + 16:
            size *= 2
    while size <= max_size:
        x = (torch.rand(1, in_channels, size, size, dtype=torch.float64) + 0.5).requires_grad_()
        try:
            out = model(x)
        except RuntimeError:  # too small for the net
            size *= 2
            continue
        if out.shape[-1] == 0 or out.shape[-2] == 0:
            size *= 2
            continue
        out[..., out.shape[-2] // 2, out.shape[-1] // 2].sum().backward()
        support = x.grad.abs().sum(dim=(0, 1)) > 0
        rows = torch.nonzero(support.any(dim=1)).flatten()
        cols = torch.nonzero(support.any(dim=0)).flatten()
        if len(rows) == 0:
            raise ConformanceError("the central logit does not depend on the input at all")
        touches = rows[0] == 0 or cols[0] == 0 or rows[-1] == size - 1 or cols[-1] == size - 1
        if not touches:
            side_h = int(rows[-1] - rows[0] + 1)
            side_w = int(cols[-1] - cols[0] + 1)
            if side_h != side_w:
                raise ConformanceError(f"receptive field is not square: {side_h} x {side_w}")
            return side_h
        size *= 2
    raise ConformanceError(f"receptive field is wider than the largest test input {max_size}")


def check_discriminator(
    factory_or_entry: Factory | Entry,
    in_channels: int = 6,
    *,
    size: int | None = None,
    batch: int = 2,
    measure_field: bool = True,
    max_field_size: int = 1024,
    name: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Build a discriminator and check the contract on a tiny batch.

    ``size`` defaults to the first of 64, 128, 256 px the net accepts. Checks: logits
    ``(batch, 1, h, w)``, finite, gradients reach every parameter and the input,
    ``receptive_field`` is a positive int equal to registry meta and, with ``measure_field``, to
    the field measured by :func:`measure_receptive_field` (inputs up to ``max_field_size`` px).
    Returns what it measured.

    >>> from i2i.models import pixel
    >>> check_discriminator(pixel, 4, ndf=8)["logits_shape"]
    (2, 1, 64, 64)
    """
    factory, component, meta = _resolve(factory_or_entry, name)
    try:
        model = factory(in_channels=in_channels, **kwargs)
    except Exception as exc:
        raise ConformanceError(
            f"{component}: building with in_channels={in_channels}, {kwargs} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, nn.Module):
        _fail(component, f"factory returned {type(model).__name__}, expected an nn.Module")
    field = _int_attr(model, "receptive_field", component)
    if "receptive_field" in meta and meta["receptive_field"] != field:
        _fail(
            component, f"registered receptive_field={meta['receptive_field']}, module has {field}"
        )
    model.train()
    sizes = [size] if size is not None else [64, 128, 256]
    for i, side in enumerate(sizes):  # deep nets (image286) need more than 64 px
        x = (torch.rand(batch, in_channels, side, side) * 2 - 1).requires_grad_()
        try:
            out = model(x)
        except RuntimeError as exc:
            if i + 1 < len(sizes):
                continue
            raise ConformanceError(
                f"{component}: forward on {tuple(x.shape)} failed: {type(exc).__name__}: {exc}"
            ) from exc
        break
    if not isinstance(out, Tensor) or out.ndim != 4 or out.shape[:2] != (batch, 1):
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        _fail(
            component, f"expected logits (B={batch}, 1, h, w) for input {tuple(x.shape)}, got {got}"
        )
    _check_finite(component, "logits", out)
    model.zero_grad(set_to_none=True)
    out.square().mean().backward()
    check_gradients(model, component)
    if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().sum() == 0:
        _fail(component, "no finite, non-zero gradient reaches the input (the generator needs it)")
    measured = None
    if measure_field:
        try:
            measured = measure_receptive_field(model, in_channels, max_size=max_field_size)
        except ConformanceError as exc:
            raise ConformanceError(f"{component}: {exc}") from exc
        if measured != field:
            _fail(component, f"declares receptive_field={field} but measures {measured}")
    return {"receptive_field": field, "measured": measured, "logits_shape": tuple(out.shape)}


class _TinyCritic(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 4, 3, padding=1), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 3)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def check_loss(
    factory_or_entry: Factory | Entry,
    *,
    type: str | None = None,
    name: str | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Check an adversarial or reconstruction loss (``type`` from registry meta when omitted).

    Adversarial: scalar finite losses with gradients to the logits; D's loss is lower when real
    logits are high and fake ones low than the other way round, G's lower when fake logits are
    high; ``penalty`` is ``None`` or a scalar whose gradient reaches D's parameters.
    Reconstruction: a finite scalar, 0 on ``(t, t)``, larger on ``(fake, t)``, with gradient.

    >>> from i2i.losses import L1Loss, HingeLoss
    >>> check_loss(L1Loss, type="reconstruction")["type"], check_loss(HingeLoss, type="adversarial")["type"]
    ('reconstruction', 'adversarial')
    """
    factory, component, meta = _resolve(factory_or_entry, name)
    kind = type or meta.get("type")
    if kind not in ("adversarial", "reconstruction"):
        _fail(component, f"expected type 'adversarial' or 'reconstruction', got {kind!r}")
    loss = factory(**kwargs)
    if not callable(loss):
        _fail(component, f"factory returned a non-callable {loss!r}")

    def scalar(what: str, value: Any) -> Tensor:
        if not isinstance(value, Tensor) or value.ndim != 0:
            got = tuple(value.shape) if isinstance(value, Tensor) else value
            _fail(component, f"{what} must be a scalar tensor, got {got}")
        _check_finite(component, what, value)
        return value

    if kind == "reconstruction":
        target = torch.rand(2, 3, 16, 16) * 2 - 1
        fake = (torch.rand(2, 3, 16, 16) * 2 - 1).requires_grad_()
        value = scalar("loss(fake, target)", loss(fake, target))
        value.backward()
        if fake.grad is None or not torch.isfinite(fake.grad).all():
            _fail(component, "no finite gradient reaches `fake`")
        same = scalar("loss(target, target)", loss(target.clone(), target))
        if abs(same.item()) > 1e-5 or not value.item() > same.item():
            _fail(
                component,
                f"expected loss(t, t) == 0 < loss(fake, t), got {same.item():.3g} and {value.item():.3g}",
            )
        return {"type": kind, "loss": loss}

    for method in ("discriminator_loss", "generator_loss", "penalty"):
        if not callable(getattr(loss, method, None)):
            _fail(component, f"adversarial losses need a {method}() method")
    shape = (2, 1, 6, 6)
    real = torch.randn(shape).requires_grad_()
    fake = torch.randn(shape).requires_grad_()
    d_loss = scalar("discriminator_loss", loss.discriminator_loss(real, fake))
    g_loss = scalar("generator_loss", loss.generator_loss(fake))
    grads = torch.autograd.grad(d_loss, (real, fake), allow_unused=True)
    grads += torch.autograd.grad(g_loss, (fake,), allow_unused=True)
    for what, g in zip(
        (
            "discriminator_loss -> real logits",
            "discriminator_loss -> fake logits",
            "generator_loss",
        ),
        grads,
        strict=True,
    ):
        if g is None or not torch.isfinite(g).all() or g.abs().sum() == 0:
            _fail(component, f"no finite, non-zero gradient from {what}")
    hi, lo = torch.full(shape, 3.0), torch.full(shape, -3.0)
    if not loss.discriminator_loss(hi, lo) < loss.discriminator_loss(lo, hi):
        _fail(component, "discriminator_loss is not lower for (real high, fake low) logits")
    if not loss.generator_loss(hi) < loss.generator_loss(lo):
        _fail(component, "generator_loss is not lower when fake logits are high")
    critic = _TinyCritic(3)
    penalty = loss.penalty(critic, torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    if penalty is not None:
        scalar("penalty", penalty)
        penalty.backward()
        grads = [p.grad for p in critic.parameters() if p.grad is not None]
        if not grads or all(g.abs().sum() == 0 for g in grads):
            _fail(component, "penalty gives no gradient to D's parameters (create_graph=True?)")
        if not all(torch.isfinite(g).all() for g in grads):
            _fail(component, "penalty gives non-finite gradients to D's parameters")
    return {"type": kind, "loss": loss, "has_penalty": penalty is not None}


def check_task(task: Task, *, size: int = 64, name: str = "task") -> dict[str, Any]:
    """Check a task's conversions on random [0, 1] RGB images of ``size`` px.

    ``make_pair`` gives ``(in_channels, H, W)`` and ``(out_channels, H, W)`` within [-1, 1];
    ``output_to_image`` / ``input_to_image`` give 3-channel [0, 1] images, batched too;
    ``image_to_input`` gives ``(in_channels, H, W)``.

    >>> t = Task(summary="demo", in_channels=3, out_channels=3, layout="aligned")
    >>> check_task(t, name="demo")["input_shape"]
    (3, 64, 64)
    """
    component = f"task {name!r}"
    if not isinstance(task, Task):
        _fail(component, f"expected an i2i.Task, got {type(task).__name__}")
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(3, size, size, generator=gen), torch.rand(3, size, size, generator=gen)
    arg = images[0] if task.layout == "single" else images
    try:
        x, y = task.make_pair(arg, generator=gen)
    except Exception as exc:
        raise ConformanceError(
            f"{component}: make_pair failed: {type(exc).__name__}: {exc}"
        ) from exc
    for what, t, c in (("input", x, task.in_channels), ("target", y, task.out_channels)):
        if not isinstance(t, Tensor) or tuple(t.shape) != (c, size, size):
            got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
            _fail(component, f"make_pair {what}: expected ({c}, {size}, {size}), got {got}")
        _check_finite(component, f"make_pair {what}", t)
        if t.min() < -1 - 1e-5 or t.max() > 1 + 1e-5:
            _fail(
                component,
                f"make_pair {what} outside [-1, 1]: [{t.min().item():.3g}, {t.max().item():.3g}]",
            )

    def rgb(what: str, img: Tensor, lead: tuple[int, ...]) -> None:
        expected = (*lead, 3, size, size)
        if not isinstance(img, Tensor) or tuple(img.shape) != expected:
            got = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
            _fail(component, f"{what}: expected RGB {expected}, got {got}")
        _check_finite(component, what, img)
        if img.min() < -1e-5 or img.max() > 1 + 1e-5:
            _fail(
                component,
                f"{what} outside [0, 1]: [{img.min().item():.3g}, {img.max().item():.3g}]",
            )

    rgb("output_to_image", task.output_to_image(x, y), ())
    rgb("input_to_image", task.input_to_image(x), ())
    rgb("output_to_image (batched)", task.output_to_image(x[None], y[None]), (1,))
    rgb("input_to_image (batched)", task.input_to_image(x[None]), (1,))
    fed = task.image_to_input(images[0])
    if not isinstance(fed, Tensor) or tuple(fed.shape) != (task.in_channels, size, size):
        got = tuple(fed.shape) if isinstance(fed, Tensor) else type(fed).__name__
        _fail(
            component,
            f"image_to_input: expected ({task.in_channels}, {size}, {size}), got {got}",
        )
    _check_finite(component, "image_to_input", fed)
    return {"input_shape": tuple(x.shape), "target_shape": tuple(y.shape)}
