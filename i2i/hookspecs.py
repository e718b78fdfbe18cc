"""The hooks i2i calls. Every hook takes a ``register`` callback (or the click group).

A plugin implements any of them with ``@i2i.hookimpl``::

    from i2i import hookimpl

    @hookimpl
    def i2i_register_generators(register):
        register("tiny", make_tiny, summary="A tiny generator", size_multiple=1)
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("i2i")


@hookspec
def i2i_register_generators(register):
    """Register generator factories: ``register(name, factory, *, aliases=(), summary=None, **meta)``.

    A factory takes ``in_channels``, ``out_channels`` and its own keywords and returns an
    ``nn.Module`` whose ``size_multiple`` attribute says which input sizes it accepts
    (``i2i.check_image_batch`` refuses other inputs with the built-in networks' messages).
    ``i2i.norm_layer`` and ``i2i.DtypeKeepingReflectionPad2d`` are the built-in networks'
    norms and reflection padding, with their CPU speed paths (bf16 padding stays bf16 under
    CPU autocast, where ``nn.ReflectionPad2d`` casts to fp32 and back); their dropout,
    ``i2i.LogicalOrderDropout``, draws one mask per seed whether the activations are NCHW or
    channels_last (``nn.Dropout`` fills its mask in memory order); ``i2i.GemmConv2d`` and
    ``i2i.GemmConvTranspose2d`` are ``nn.Conv2d`` and ``nn.ConvTranspose2d`` with the same
    parameters and their CPU speed paths.
    """


@hookspec
def i2i_register_discriminators(register):
    """Register discriminator factories: ``register(name, factory, *, aliases=(), summary=None, **meta)``.

    A factory takes ``in_channels`` (input + output channels when conditional) and returns an
    ``nn.Module`` of logits whose ``receptive_field`` attribute is the side of one logit's field.
    """


@hookspec
def i2i_register_losses(register):
    """Register loss factories: ``register(name, factory, *, aliases=(), summary=None, type=...)``.

    ``type`` is ``"adversarial"`` (an :class:`i2i.losses.AdversarialLoss`) or
    ``"reconstruction"`` (a callable ``loss(fake, target) -> Tensor``).
    """


@hookspec
def i2i_register_tasks(register):
    """Register tasks: ``register(name, task, *, aliases=())`` with an :class:`i2i.Task`."""


@hookspec
def i2i_register_metrics(register):
    """Register evaluation metrics: ``register(name, factory, *, summary=None)``.

    A factory returns a :class:`i2i.metrics.Metric`.
    """


@hookspec
def i2i_register_recipes(register):
    """Register training methods: ``register(name, recipe, *, aliases=(), summary=None)``.

    ``recipe`` is an :class:`i2i.Recipe`: its options with defaults, and ``build(setup)`` that
    returns the run's :class:`i2i.RecipeStep` (roles, optimizers, the step on one batch).
    """


@hookspec
def i2i_register_commands(cli):
    """Add click commands to the ``i2i`` command group ``cli``."""
