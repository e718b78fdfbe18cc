"""The CycleGAN row: one step of the ``cyclegan`` recipe (G, F, D_X, D_Y) as a path runs it.

The step is what ``i2i run --recipe cyclegan`` trains with: the recipe's own ``build`` from a
config resolved as that command resolves it (resnet_9blocks, PatchGAN 70, instance norm,
LSGAN, cycle and identity terms, a pool of 50). Only what a path changes is swapped in: the
precision and memory format (through the config), PyTorch's stock layers, and Adam (foreach
for the reference, as the official code; the engine's fused one for i2i's default paths).

>>> from benchmarks.setups import REFERENCE, TrainSetup
>>> s = TrainSetup(recipe="cyclegan", generator="resnet_6blocks", size=32, ngf=4, ndf=4,
...                norm="instance")
>>> step = build_cyclegan_step(s, REFERENCE)
>>> sorted(step.modules()), type(step.opt_g).__name__
(['D_X', 'D_Y', 'F', 'G'], 'Adam')
>>> sorted(step.train_step(synthetic_batch(s)))[:3]
['cycle_x', 'cycle_y', 'd_loss']
"""

from __future__ import annotations

from typing import Any

import torch

from benchmarks.device import bench_device
from benchmarks.setups import PathSettings, TrainSetup, build_adam, synthetic_batch
from i2i import RecipeSetup, Wrapping
from i2i import catalog as default_catalog
from i2i.config import resolve_config
from i2i.engine.distributed import DistInfo
from i2i.models.layers import set_speedups

#: A task with 3-channel images on both sides (its data is never read here).
TASK = "facades"

__all__ = ["build_cyclegan_step", "synthetic_batch"]


def build_cyclegan_step(setup: TrainSetup, settings: PathSettings, seed: int = 0) -> Any:
    """The cyclegan recipe's step for ``setup``, run the way ``settings`` says."""
    cat = default_catalog()
    device = bench_device()
    task = cat.tasks.get(TASK).obj
    if (setup.in_channels, setup.out_channels) != (task.in_channels, task.out_channels):
        raise ValueError(f"the CycleGAN row uses task {TASK!r}: 3 -> 3 channels")
    cfg = resolve_config(
        cat,
        TASK,
        recipe="cyclegan",
        generator=setup.generator,
        discriminator=setup.discriminator,
        generator_kwargs={"ngf": setup.ngf},
        discriminator_kwargs={"ndf": setup.ndf},
        norm=setup.norm,
        crop_size=setup.size,
        batch_size=setup.batch,
        precision=settings.precision,
        channels_last=settings.channels_last,
        device=device.type,
    )
    torch.manual_seed(seed)
    recipe = cat.recipes.get(cfg.recipe).obj
    # What `i2i run` builds: channels_last resolved from the config as the path set it.
    step = recipe.build(
        RecipeSetup.for_run(
            cfg,
            task=task,
            catalog=cat,
            device=device,
            precision=settings.precision,
            dist=DistInfo(),
        )
    )
    nets = step.modules()
    for net in nets.values():
        set_speedups(net, settings.speedups)
    step.opt_g = build_adam([nets["G"], nets["F"]], settings)
    step.opt_d = build_adam([nets["D_X"], nets["D_Y"]], settings)
    if settings.compile:
        step.wrap(Wrapping(compile_=True))
    return step
