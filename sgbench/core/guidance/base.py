"""Guidance as branches plus a combination (docs/design.md, "Guidance").

Every method says which forward passes ("branches") it needs at time t and how it combines them,
written uniformly as

    D = D_weak + w (D_strong - D_weak)        (the paper's Eq. 7-8 with omega = w; w = 1 is D_strong)

This file holds what all methods share: `Branch` and `Models`, sparsity `Schedule`s and guidance
intervals, the linear combination, the execution plan (which branches batch into one forward and which
share a prefix; `sgbench.core.flops` counts exactly this plan), the base class, and the registry, which is
the single source of truth for method names.

Branches name their condition as a kind ("cond", "null", "random"); a conditioning object
(`sgbench.core.conditioning`: class labels or prompts) turns the kind into the model's input, so every
method works unchanged on class and text models.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from sgbench.core.conditioning import ClassConditioning, Conditioning
from sgbench.core.conditioning import random_labels  # noqa: F401  ICG's draw; importable from here as before
from sgbench.utils.errors import SgbenchError
from sgbench.models.sit import SiT
from sgbench.core.seeding import TOKENS, sample_generators

# ----------------------------------------------------------------------------------------------------
# Branches and models


@dataclass(frozen=True)
class Branch:
    """One forward pass a method needs at time t."""

    model: str  # "main" or "guide"
    condition: str  # "cond" (the sample's class or prompt), "null" (null class, empty prompt), "random" (ICG's)
    sparsity: float  # gamma for this forward
    role: str  # "strong" or "weak"


@dataclass
class Models:
    main: SiT
    guide: SiT | None = None


def check_guide(models: Models) -> None:
    """A guide must exist and take the main model's inputs and classes (or, like it, prompts)."""
    if models.guide is None:
        raise SgbenchError("Expected a guide model (option --guide, a checkpoint) for this guidance but got none")
    main, guide = models.main.config, models.guide.config
    if (main.text is None) != (guide.text is None):
        kind = {True: "class-conditional", False: "a text model"}
        raise SgbenchError(
            f"Expected the guide to be {kind[main.text is None]} like the main model but it is {kind[guide.text is None]}"
        )
    for key in ("input_size", "in_channels", "num_classes"):
        if getattr(main, key) != getattr(guide, key):
            raise SgbenchError(
                f"Expected the guide's {key} to equal the main model's ({getattr(main, key)}) "
                f"but got {getattr(guide, key)}"
            )


def check_sparse_backbone(method: "GuidanceMethod", models: Models, times: Sequence[float]) -> None:
    """A branch that drops tokens needs a model that can drop them (routes or masking); a dense model
    would silently run it dense, and sg would reduce to its strong branch at twice the cost."""
    for t in times:
        for b in method.branches(t):
            model = models.main if b.model == "main" else models.guide
            if b.sparsity > 0 and model is not None and not model.config.routes and model.config.masking is None:
                raise SgbenchError(
                    f"{method.name} runs its {b.role} branch at token drop rate {b.sparsity:g} (t = {t:g}), but the "
                    f"{b.model} model ({model.config.name}) has no routes and no masking: sparse guidance needs a "
                    "token-sparse backbone, trained with routing or masking"
                )


# ----------------------------------------------------------------------------------------------------
# Schedules over t (sparsities) and the guidance interval


@dataclass(frozen=True)
class Schedule:
    """A value over sampling time t in [0, 1] (t = 0 noise): constant, linear or cosine from start to end.

    cosine: end + (start - end) (1 + cos(pi t)) / 2, i.e. a cosine decay when start > end.
    Written as '0.5', 'linear:0.2:0.8' or 'cosine:0.6:0.0'.
    """

    kind: str
    start: float
    end: float

    KINDS: ClassVar[tuple[str, ...]] = ("constant", "linear", "cosine")

    def __call__(self, t: float) -> float:
        if self.kind == "linear":
            return self.start + (self.end - self.start) * t
        if self.kind == "cosine":
            return self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * t))
        return self.start

    def __str__(self) -> str:
        return f"{self.start:g}" if self.kind == "constant" else f"{self.kind}:{self.start:g}:{self.end:g}"

    @classmethod
    def constant(cls, value: float) -> "Schedule":
        return cls("constant", float(value), float(value))

    @classmethod
    def parse(cls, value) -> "Schedule":
        if isinstance(value, Schedule):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return cls.constant(value)
        parts = str(value).split(":")
        try:
            if len(parts) == 1:
                return cls.constant(float(parts[0]))
            if len(parts) == 3 and parts[0] in cls.KINDS:
                return cls(parts[0], float(parts[1]), float(parts[2]))
        except ValueError:
            pass
        raise SgbenchError(
            f"Expected a sparsity schedule as VALUE, linear:START:END or cosine:START:END but got '{value}'"
        )


def parse_interval(value) -> tuple[float, float]:
    """'0.2:0.8' or (0.2, 0.8) -> (t_lo, t_hi) with 0 <= t_lo <= t_hi <= 1. One syntax: a comma is
    refused with a hint, since commas separate parameters in a spec like cfg:scale=2,interval=0.2:0.8."""
    if isinstance(value, str) and "," in value:
        raise SgbenchError(f"Expected --interval as T_LO:T_HI (e.g. 0.2:0.8) but got '{value}': separate the two times with ':'")
    try:
        if isinstance(value, str):
            lo, hi = (float(v) for v in value.split(":"))
        else:
            lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SgbenchError(f"Expected a guidance interval as T_LO:T_HI but got '{value}'") from None
    if not (0.0 <= lo <= hi <= 1.0):
        raise SgbenchError(f"Expected a guidance interval with 0 <= t_lo <= t_hi <= 1 but got {lo:g}:{hi:g}")
    return (lo, hi)


def check_sparsity(name: str, schedule: Schedule) -> None:
    for value in (schedule.start, schedule.end):  # linear and cosine stay between their end points
        if not (0.0 <= value < 1.0):
            raise SgbenchError(f"Expected {name} in [0, 1) (the fraction of tokens dropped) but got {schedule}")


def check_order(gs: Schedule, gw: Schedule, *, strict: bool, method: str) -> None:
    """gamma_strong < gamma_weak (or <=) at every t; checked on a fine grid since schedules may differ."""
    rule = "0 <= gs < gw < 1" if strict else "0 <= gs <= gw < 1"
    for i in range(1001):
        t = i / 1000
        s, w = gs(t), gw(t)
        if s > w or (strict and s == w):
            at = "" if gs.kind == gw.kind == "constant" else f" at t={t:g}"
            raise SgbenchError(f"Expected {rule} for {method} (the weak branch drops more tokens) but got gs={gs}, gw={gw}{at}")


# ----------------------------------------------------------------------------------------------------
# The combination


def combine(weak: torch.Tensor, strong: torch.Tensor, scale: float) -> torch.Tensor:
    """D = D_weak + w (D_strong - D_weak): w = 1 is the strong branch alone (Eq. 7).

    torch.lerp extrapolates for w > 1 (as in EDM2's autoguidance) and returns D_strong exactly at w = 1.
    """
    return torch.lerp(weak, strong, scale)


# ----------------------------------------------------------------------------------------------------
# Execution plan: what runs as one forward, what shares a prefix. `sgbench.core.flops` counts this plan.


@dataclass(frozen=True)
class Forward:
    """One `model.prefix` on the concatenated conditions, then one `model.suffix` per sparsity.

    Branches of one model at one sparsity batch together (cfg's cond and null halves); groups of the
    same model and the same conditions at different sparsities share the prefix (sg's saving: the
    blocks before the first route see identical inputs).
    """

    model: str
    conditions: tuple[str, ...]  # batch layout: [condition 0 | condition 1 | ...], each of the batch size
    sparsities: tuple[float, ...]
    branch_ids: tuple[tuple[int, ...], ...]  # per sparsity: the branch index of each condition slot


def plan(branches: Sequence[Branch]) -> list[Forward]:
    by_sparsity: dict[tuple[str, float], list[int]] = {}
    for k, b in enumerate(branches):
        by_sparsity.setdefault((b.model, b.sparsity), []).append(k)
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[float, tuple[int, ...]]]] = {}
    for (model, gamma), ks in by_sparsity.items():
        conditions = tuple(branches[k].condition for k in ks)
        groups.setdefault((model, conditions), []).append((gamma, tuple(ks)))
    return [
        Forward(model, conditions, tuple(g for g, _ in items), tuple(ks for _, ks in items))
        for (model, conditions), items in groups.items()
    ]


def as_conditioning(labels: torch.Tensor | None, conditioning: Conditioning | None) -> Conditioning:
    """`labels=` is shorthand for `conditioning=ClassConditioning(labels)`; exactly one is given."""
    if (labels is None) == (conditioning is None):
        raise TypeError("Expected exactly one of labels= (class labels) and conditioning= but got "
                        f"{'both' if labels is not None else 'neither'}")
    return ClassConditioning(labels) if conditioning is None else conditioning


def run_branches(
    models: Models,
    branches: Sequence[Branch],
    x: torch.Tensor,
    t: float,
    *,
    step: int,
    indices: Sequence[int],
    seed: int,
    labels: torch.Tensor | None = None,  # (B,) long class labels, or:
    conditioning: Conditioning | None = None,  # class labels or prompts (sgbench.core.conditioning)
) -> list[torch.Tensor]:
    """Velocities of `branches` (in order), each (B, C, H, W), executed as `plan(branches)` says.

    Branch k selects its tokens with `sample_generators(seed, indices, TOKENS, step, k)`, so a sample's
    result never depends on its batch.
    """
    conditioning = as_conditioning(labels, conditioning)
    B = x.shape[0]
    outs: list[torch.Tensor | None] = [None] * len(branches)
    for fwd in plan(branches):
        model = models.main if fwd.model == "main" else models.guide
        assert model is not None, "check_guide runs before any guide branch"
        n = len(fwd.conditions)
        y = conditioning.concat(  # (n B,) labels, or n B encoded prompts
            [conditioning.batch(c, model=model, seed=seed, indices=indices, step=step) for c in fwd.conditions]
        )
        xs = x.repeat(n, *([1] * (x.ndim - 1)))  # (n B, C, H, W)
        ts = torch.full((n * B,), float(t), device=x.device)
        prefix = model.prefix(xs, ts, y)
        for gamma, ks in zip(fwd.sparsities, fwd.branch_ids):
            gens = None
            if gamma > 0:
                gens = [g for k in ks for g in sample_generators(seed, indices, TOKENS, step, k)]
            v = model.suffix(prefix, sparsity=gamma, generators=gens)
            for j, k in enumerate(ks):
                outs[k] = v[j * B : (j + 1) * B]
    return outs  # type: ignore[return-value]


# ----------------------------------------------------------------------------------------------------
# Base class and registry


def param(default, help: str, typical: str = "", search: tuple = ()):
    """A method parameter: default, one-line help and typical range (shown by `sgbench guidance list`), and
    the values `sgbench tune` searches by default (docs/design.md, "Tuning"; empty: the default only)."""
    return dataclasses.field(default=default, metadata={"help": help, "typical": typical, "search": tuple(search)})


def scale_field(default: float = 1.5, typical: str = "1.25-3", search: tuple = (1.5, 2.0, 2.5, 3.0)):
    return param(default, "guidance scale w (omega); 1 = strong branch alone", typical, search)


def interval_field(search: tuple = ((0.0, 1.0), (0.2, 1.0))):
    """The guidance interval; the default search tries guidance everywhere and guidance off near the noise
    end (t < 0.2), where Kynkaanniemi et al. 2024 find it harms diversity."""
    return param((0.0, 1.0), "guidance interval t_lo:t_hi; outside it only the strong branch runs", search=search)


def sparsity_field(default, help: str, typical: str = "0-0.95", search: tuple = ()):
    return param(Schedule.parse(default), help, typical, search)


def search_values(f: dataclasses.Field) -> tuple:
    """The default search values of a parameter field (its metadata), or its default alone."""
    return tuple(f.metadata.get("search", ())) or (f.default,)


@dataclass(frozen=True)
class GuidanceMethod:
    """A guidance method: `strong(t)` and `weak(t)` say which forwards it needs, `combine` how they mix.

    Subclasses are frozen dataclasses whose fields are the method's parameters (typed: float,
    Schedule, interval), built and validated by `build_guidance`.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    needs_guide: ClassVar[bool] = False

    # -- what a method defines ---------------------------------------------------------------------

    def strong(self, t: float) -> Branch:
        raise NotImplementedError

    def weak(self, t: float) -> Branch | None:
        """The weak branch, or None for a method with one branch."""
        return None

    def validate(self) -> None:
        """Raise SgbenchError for invalid parameters (beyond their types)."""
        scale = getattr(self, "scale", 1.0)
        if not (math.isfinite(scale) and scale >= 1.0):
            raise SgbenchError(f"Expected scale to be a finite number >= 1 (1 = no guidance) but got {scale:g}")

    def combine(self, strong: torch.Tensor, weak: torch.Tensor, *, x: torch.Tensor, t: float, state) -> torch.Tensor:
        """Linear methods combine velocities directly."""
        return combine(weak, strong, self.scale)  # type: ignore[attr-defined]

    def new_state(self, batch: int):
        """Per-trajectory state (APG's momentum); None for stateless methods."""
        return None

    # -- shared machinery ----------------------------------------------------------------------------

    @property
    def params(self) -> dict:
        """Every parameter, defaults filled, in one canonical JSON form: numbers as floats (a constant
        schedule too), other schedules as 'cosine:0.6:0', the interval as [t_lo, t_hi]. Equal settings
        give equal dicts however they were spelled (`-g sg` and `--gs 0.5 --gw 0.9`; YAML 0.5 and '0.5'),
        so this is what a run's identity and the leaderboard record."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Schedule):
                out[f.name] = value.start if value.kind == "constant" else str(value)
            elif isinstance(value, tuple):
                out[f.name] = [float(v) for v in value]
            else:
                out[f.name] = float(value)
        return out

    def guided(self, t: float) -> bool:
        """Whether the weak branch runs at t: inside the interval and with a scale that uses it."""
        interval = getattr(self, "interval", (0.0, 1.0))
        return self.weak(t) is not None and getattr(self, "scale", 1.0) != 1.0 and interval[0] <= t <= interval[1]

    def branches(self, t: float) -> list[Branch]:
        """The forwards that run at t: strong first (branch index 0), then weak where guidance is on."""
        return [self.strong(t), self.weak(t)] if self.guided(t) else [self.strong(t)]  # type: ignore[list-item]

    def velocity(
        self,
        models: Models,
        x: torch.Tensor,
        t: float,
        *,
        step: int,
        indices: Sequence[int],
        seed: int,
        state,
        labels: torch.Tensor | None = None,
        conditioning: Conditioning | None = None,
    ) -> torch.Tensor:
        """Guided velocity at (x, t), (B, C, H, W). indices: the samples' run indices. The condition:
        labels (B,) long for a class model, or a conditioning (`sgbench.core.conditioning`: class labels or
        prompts), exactly one."""
        if self.needs_guide:
            check_guide(models)
        branches = self.branches(t)
        outs = run_branches(
            models, branches, x, t, step=step, indices=indices, seed=seed, labels=labels, conditioning=conditioning
        )
        if len(outs) == 1:
            return outs[0]
        return self.combine(outs[0], outs[1], x=x, t=t, state=state)


REGISTRY: dict[str, type[GuidanceMethod]] = {}


def register(cls: type[GuidanceMethod]) -> type[GuidanceMethod]:
    assert cls.name and cls.name not in REGISTRY, cls.name
    REGISTRY[cls.name] = cls
    return cls


def parse_param(method: str, f: dataclasses.Field, value):
    kind = _kind(f)
    if kind == "schedule":
        return Schedule.parse(value)
    if kind == "interval":
        return parse_interval(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SgbenchError(f"Expected a number for {method}'s {f.name} but got '{value}'") from None


def option_name(param: str) -> str:
    return "--" + param.replace("_", "-")


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter name across the registry: what `--NAME` means, its kind, and each method's default."""

    name: str
    help: str
    kind: str                      # 'float', 'schedule' or 'interval'
    defaults: dict[str, str]       # method name -> its default, as the user would type it

    @property
    def metavar(self) -> str:
        return {"float": "FLOAT", "schedule": "SCHEDULE", "interval": "T_LO:T_HI"}[self.kind]


def _kind(f: dataclasses.Field) -> str:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    return "schedule" if kind == "Schedule" else "interval" if kind.startswith("tuple") else "float"


def parameter_specs() -> dict[str, ParameterSpec]:
    """Every method parameter of the registry by name, in first-seen order (the CLI's guidance options)."""
    specs: dict[str, ParameterSpec] = {}
    for method, cls in REGISTRY.items():
        for f in dataclasses.fields(cls):
            default = f.default
            shown = ":".join(f"{v:g}" for v in default) if isinstance(default, tuple) else str(default) if isinstance(default, Schedule) else f"{default:g}"
            if f.name not in specs:
                specs[f.name] = ParameterSpec(f.name, f.metadata["help"], _kind(f), {})
            specs[f.name].defaults[method] = shown
    return specs


def build_guidance(name: str, **params) -> GuidanceMethod:
    """The registered method `name` with `params` parsed (strings accepted) and validated."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, REGISTRY, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SgbenchError(f"Expected a guidance method but got '{name}'.{hint} Available: {', '.join(REGISTRY)}")
    cls = REGISTRY[name]
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in params:
        if key not in fields:
            takes = ", ".join(option_name(k) for k in fields) or "no options"
            raise SgbenchError(f"Guidance '{name}' does not take {option_name(key)}: it takes {takes}")
    method = cls(**{k: parse_param(name, fields[k], v) for k, v in params.items()})
    method.validate()
    return method


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """'sg:gs=0.5,gw=0.9' -> ('sg', {'gs': '0.5', 'gw': '0.9'}); schedules and intervals use ':' inside."""
    name, _, rest = spec.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise SgbenchError(f"Expected NAME[:key=value,...] (e.g. sg:gs=0.5,gw=0.9) but got '{spec}'")
        params[key.strip().replace("-", "_")] = value.strip()
    return name.strip(), params
