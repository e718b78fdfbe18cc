"""The training objective: weighted loss terms parsed from ``"gan=1,l1=100"``.

At most one adversarial term; any number of reconstruction terms. The discriminator loss is
halved, as in the paper ("we divide the objective by 2 while optimizing D").

>>> import torch
>>> from i2i.plugins import make_plugin_manager
>>> from i2i.catalog import Catalog
>>> losses = Catalog.from_plugin_manager(make_plugin_manager(load_entrypoints=False)).losses
>>> obj = Objective.parse("gan=1, l1=100", losses)
>>> obj.spec
'gan=1,l1=100'
>>> d = torch.nn.Conv2d(6, 1, 4, 2, 1)
>>> x, y, fake = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
>>> loss, parts = obj.generator_loss(d, torch.cat([x, fake], 1), fake, y)
>>> loss.shape, sorted(parts)
(torch.Size([]), ['g_gan', 'g_l1'])
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from i2i.losses.adversarial import AdversarialLoss
from i2i.registry import Registry

LOSS_TYPES = ("adversarial", "reconstruction")
_TERM = re.compile(r"^\s*([A-Za-z0-9_]*)\s*=\s*(\S*)\s*$")


class ObjectiveError(ValueError):
    """A malformed objective specification."""


@dataclass(frozen=True)
class Term:
    """One weighted loss term of an objective."""

    name: str
    weight: float
    type: str
    loss: nn.Module


def _format_weight(w: float) -> str:
    return f"{w:g}"


class Objective(nn.Module):
    """Weighted sum of at most one adversarial and any number of reconstruction terms.

    ``parts`` returned by the two losses are detached scalars named ``d_<name>``,
    ``d_<name>_penalty`` and ``g_<name>``, the weighted contributions that sum to the loss.

    >>> from i2i.losses import L1Loss
    >>> obj = Objective([Term("l1", 100.0, "reconstruction", L1Loss())])
    >>> obj.adversarial is None, obj.spec
    (True, 'l1=100')
    """

    def __init__(self, terms: list[Term]):
        super().__init__()
        if not terms:
            raise ObjectiveError("an objective needs at least one term, e.g. 'gan=1,l1=100'")
        seen: set[str] = set()
        for t in terms:
            if t.name in seen:
                raise ObjectiveError(f"objective term {t.name!r} appears twice")
            seen.add(t.name)
            if t.type not in LOSS_TYPES:
                raise ObjectiveError(
                    f"loss {t.name!r} has type {t.type!r}; expected one of {', '.join(LOSS_TYPES)}"
                )
            if not (isinstance(t.weight, (int, float)) and math.isfinite(t.weight)) or t.weight < 0:
                raise ObjectiveError(
                    f"weight of {t.name!r} must be a finite number >= 0, got {t.weight!r}"
                )
            if t.type == "adversarial" and not isinstance(t.loss, AdversarialLoss):
                raise ObjectiveError(
                    f"adversarial loss {t.name!r} must be an i2i.losses.AdversarialLoss, "
                    f"got {type(t.loss).__name__}"
                )
        adversarial = [t for t in terms if t.type == "adversarial"]
        if len(adversarial) > 1:
            raise ObjectiveError(
                "an objective takes at most one adversarial term, got "
                + ", ".join(t.name for t in adversarial)
            )
        self.terms = list(terms)
        self.adversarial: Term | None = adversarial[0] if adversarial else None
        self.reconstruction: list[Term] = [t for t in terms if t.type == "reconstruction"]
        self.modules_by_name = nn.ModuleDict({t.name: t.loss for t in terms})

    @property
    def spec(self) -> str:
        """The canonical text form, e.g. ``'gan=1,l1=100'``."""
        return ",".join(f"{t.name}={_format_weight(t.weight)}" for t in self.terms)

    @property
    def needs_discriminator(self) -> bool:
        """Whether the objective has an adversarial term (and so a discriminator to train)."""
        return self.adversarial is not None

    def weights(self) -> dict[str, float]:
        """Term name -> weight, in order.

        >>> from i2i.losses import L1Loss
        >>> Objective([Term("l1", 100.0, "reconstruction", L1Loss())]).weights()
        {'l1': 100.0}
        """
        return {t.name: t.weight for t in self.terms}

    @classmethod
    def from_weights(cls, weights: Mapping[str, float], registry: Registry) -> Objective:
        """Build from ``{"gan": 1.0, "l1": 100.0}``, looking each loss up in ``registry``.

        >>> from i2i import catalog
        >>> Objective.from_weights({"lsgan": 1, "l1": 10}, catalog().losses).spec
        'lsgan=1,l1=10'
        """
        terms = []
        for name, weight in weights.items():
            entry = registry.get(name)  # UnknownComponentError lists the choices
            kind = entry.meta.get("type")
            if kind not in LOSS_TYPES:
                raise ObjectiveError(
                    f"loss {entry.name!r} ({entry.provider}) was registered without "
                    f"type='adversarial' or type='reconstruction' (got {kind!r})"
                )
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise ObjectiveError(f"weight of {name!r} must be a number, got {weight!r}")
            terms.append(Term(entry.name, float(weight), kind, entry.build()))
        return cls(terms)

    @classmethod
    def parse(cls, spec: str, registry: Registry) -> Objective:
        """Build from ``"name=weight,name=weight"``; a bare ``name`` means weight 1.

        >>> from i2i import catalog
        >>> Objective.parse("gan=1,l1=100", catalog().losses).weights()
        {'gan': 1.0, 'l1': 100.0}
        >>> Objective.parse("l1", catalog().losses).spec
        'l1=1'
        """
        if not isinstance(spec, str) or not spec.strip():
            raise ObjectiveError(f"empty objective {spec!r}; expected e.g. 'gan=1,l1=100'")
        weights: dict[str, float] = {}
        for raw in spec.split(","):
            item = raw.strip()
            if not item:
                raise ObjectiveError(
                    f"objective {spec!r} has an empty term; expected 'name=weight' items "
                    "separated by commas, e.g. 'gan=1,l1=100'"
                )
            m = _TERM.match(item if "=" in item else item + "=1")
            if m is None or not m.group(1):
                raise ObjectiveError(
                    f"objective term {item!r} in {spec!r} is not 'name=weight' (e.g. 'l1=100')"
                )
            name, value = m.group(1), m.group(2)
            try:
                weight = float(value)
            except ValueError:
                raise ObjectiveError(
                    f"weight {value!r} of {name!r} in objective {spec!r} is not a number"
                ) from None
            canonical = registry.get(name).name
            if canonical in weights:
                raise ObjectiveError(f"objective {spec!r} names {canonical!r} twice")
            weights[canonical] = weight
        return cls.from_weights(weights, registry)

    def discriminator_loss(
        self, discriminator: nn.Module, real_in: Tensor, fake_in: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``0.5 * w * adv.discriminator_loss(D(real_in), D(fake_in)) + penalty``.

        ``fake_in`` is detached here: the D step never trains G.
        """
        if self.adversarial is None:
            raise ObjectiveError(
                f"objective {self.spec!r} has no adversarial term: there is no discriminator loss"
            )
        adv = self.adversarial
        fake_in = fake_in.detach()
        value = (
            0.5
            * adv.weight
            * adv.loss.discriminator_loss(discriminator(real_in), discriminator(fake_in))
        )
        parts = {f"d_{adv.name}": value.detach()}
        penalty = adv.loss.penalty(discriminator, real_in, fake_in)
        if penalty is not None:
            parts[f"d_{adv.name}_penalty"] = penalty.detach()
            value = value + penalty
        return value, parts

    def generator_loss(
        self,
        discriminator: nn.Module | None,
        fake_in: Tensor | None,
        fake: Tensor,
        target: Tensor,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """``w_adv * adv.generator_loss(D(fake_in)) + sum_i w_i * rec_i(fake, target)``.

        ``discriminator`` and ``fake_in`` may be ``None`` when there is no adversarial term.
        """
        parts: dict[str, Tensor] = {}
        total = torch.zeros((), device=fake.device, dtype=fake.dtype)
        if self.adversarial is not None:
            if discriminator is None or fake_in is None:
                raise ObjectiveError(
                    f"objective {self.spec!r} has adversarial term {self.adversarial.name!r}: "
                    "generator_loss needs the discriminator and its input"
                )
            adv = self.adversarial
            value = adv.weight * adv.loss.generator_loss(discriminator(fake_in))
            parts[f"g_{adv.name}"] = value.detach()
            total = total + value
        for term in self.reconstruction:
            value = term.weight * term.loss(fake, target)
            parts[f"g_{term.name}"] = value.detach()
            total = total + value
        return total, parts

    def extra_repr(self) -> str:
        return self.spec
