"""Recipes: YAML files -> frozen dataclasses, strictly (an unknown key is an error, never ignored).

A training recipe has four sections:

    name: animal-routed
    model: {preset: Animal-T/4, routes: [[2, 5, 0.5]]}     # or masking: {rate: 0.5, decoder_depth: 2, ...}
    data:  {dataset: animal_mnist, split: all}
    # text-to-image: model.text: {encoder: embedded, vocabulary: animal_scenes, ...}, data.dataset: animal_scenes
    train: {steps: 2400, batch_size: 128, lr: 3.0e-4, ...}
    out: runs/train/animal-routed

Overrides on the command line use dotted keys: `train.steps=100 model.routes=[[2,5,0.25]]`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from sgbench.data.scenes import (
    DEFAULT_CANVAS, DEFAULT_LAYOUT, DEFAULT_OBJECTS, DEFAULT_SPRITE, LAYOUTS, OBJECT_STYLES, check_family_weights,
)
from sgbench.utils import resources
from sgbench.utils.errors import SgbenchError
from sgbench.models.sit import Masking, ModelConfig, Route, preset
from sgbench.text.encoder import TextConfig



@dataclass(frozen=True)
class ModelSection:
    preset: str
    routes: tuple[tuple[int, int, float], ...] = ()  # (start, end inclusive, training drop rate)
    masking: dict | None = None  # Masking fields: rate, decoder_depth, decoder_width, decoder_heads
    overrides: dict = field(default_factory=dict)  # other ModelConfig fields, e.g. {hidden_size: 96}
    # TextConfig fields (a text-to-image model); `vocabulary` names a dataset's (animal_scenes)
    text: dict | None = None

    def build(self) -> ModelConfig:
        routes = tuple(Route(int(s), int(e), float(r)) for s, e, r in self.routes)
        masking = None
        if self.masking is not None:
            masking = strict_dataclass(Masking, self.masking, "model.masking")
        text = None
        if self.text is not None:
            values = dict(self.text)
            if isinstance(values.get("vocabulary"), str):
                from sgbench.text.words import named_vocabulary

                values["vocabulary"] = named_vocabulary(values["vocabulary"])
            text = strict_dataclass(TextConfig, values, "model.text")
        name = self.preset
        if routes:
            name += " route " + ",".join(f"{r.start}..{r.end}@{r.rate:g}" for r in routes)
        if masking is not None:
            name += f" mask@{masking.rate:g}"
        if text is not None:
            name += f" text:{text.encoder}"
        return preset(self.preset, routes=routes, masking=masking, text=text, name=name, **self.overrides)


@dataclass(frozen=True)
class DataSection:
    dataset: str = "animal_mnist"  # 'animal_mnist' (embedded), 'latents' (an npz) or 'animal_scenes' (text)
    split: str = "all"
    path: str | None = None  # for 'latents'
    # animal_scenes: the scenes' style, by default the miniature's (sgbench.data.scenes: glyphs on the grid, 18 px)
    canvas: int = DEFAULT_CANVAS  # animal_scenes: image side, px (= the model's input_size)
    sprite: int = DEFAULT_SPRITE  # animal_scenes: longest side of an object, px (free layout: +- sprite/8)
    objects: str = DEFAULT_OBJECTS  # animal_scenes: how an object is drawn, 'silhouettes' or 'glyphs'
    layout: str = DEFAULT_LAYOUT  # animal_scenes: where objects go, 'free' or 'grid' (2x2 cells)
    hold_out: str | None = None  # animal_scenes: 'geneval' never trains on the embedded GenEval prompts
    # animal_scenes: weights of the caption families (sgbench.data.scenes.CAPTION_FAMILIES; an unnamed one
    # weighs 1), e.g. {position: 3}; None draws the seven 1/7 each, as the earlier models were trained
    caption_families: dict | None = None
    # animal_scenes: processes that render scenes (0: the training process). Rendering is ~1.3 ms a scene
    # on one core, which bounds a GPU run at ~12 steps/s of 64; the scenes are the same for any value.
    workers: int = 0


PRECISIONS = ("fp32", "bf16")
TIME_SAMPLINGS = ("uniform", "logit_normal")


@dataclass(frozen=True)
class TrainSection:
    steps: int = 1000
    batch_size: int = 128  # global batch, split evenly over processes
    lr: float = 1e-4  # AdamW, constant after warmup (paper App. A.2)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    warmup_steps: int = 0
    ema_decay: float = 0.9999
    # Ramp the EMA decay up as min(ema_decay, (1 + step) / (10 + step)) so that short runs do not keep
    # a share of the random initial weights (0.999 ** 2400 = 9%); off for the paper's long ImageNet runs.
    ema_warmup: bool = True
    # Training times t: "uniform" on [0, 1], or "logit_normal": t = sigmoid(mean + std * n), n ~ N(0, 1)
    # (SD3's sampling; JiT's mean -0.8, std 0.8 spend most steps at the noisy end, t near 0).
    time_sampling: str = "uniform"
    time_mean: float = -0.8
    time_std: float = 0.8
    class_dropout: float = 0.1  # labels replaced by the null class (captions by the empty prompt), for CFG
    mae_weight: float = 1.0  # lambda of the masked reconstruction term (masking only, App. C)
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500
    sample_every: int = 0  # 0: only at the end
    # Text models: log the attribute-swap probe of the EMA model (sgbench.evaluation.probe) every N steps into
    # train_log.jsonl, on probe_scenes scenes per attribute, so a recipe that does not learn shows it early.
    probe_every: int = 0  # 0: off
    probe_scenes: int = 100
    snapshots: tuple[int, ...] = ()  # steps at which to keep EMA weights (autoguidance guides)
    precision: str = "fp32"  # or "bf16": autocast to bfloat16 (CUDA, and CPUs with bf16 matmuls); weights stay float32
    # Fine-tuning: start model and EMA from this model file (`sgbench export model`, a training run's
    # model.safetensors or a shipped asset such as sgbench/assets/animal-scenes-routed.safetensors) instead
    # of random weights; its config must be the recipe's model. The optimiser starts fresh (with warmup).
    init_from: str | None = None


@dataclass(frozen=True)
class TrainRecipe:
    name: str
    model: ModelSection
    data: DataSection
    train: TrainSection
    out: str


def strict_dataclass(cls, values: Any, where: str):
    """Build dataclass `cls` from a mapping, refusing unknown keys with the list of allowed ones."""
    if not isinstance(values, dict):
        raise SgbenchError(f"Expected a mapping for '{where}' but got {type(values).__name__}")
    allowed = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise SgbenchError(f"Unknown key(s) {', '.join(where + '.' + k for k in unknown)}; allowed: {', '.join(allowed)}")
    kwargs = {}
    for f in fields(cls):
        if f.name in values:
            v = values[f.name]
            kwargs[f.name] = _coerce(v, str(f.type), f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise SgbenchError(f"Bad '{where}': {e}") from None


_SCALARS = {"float": float, "int": int, "str": str, "bool": bool}


def _coerce(v: Any, type_name: str, where: str) -> Any:
    """Make YAML values fit the field's annotation ('1e-3' is a str in YAML 1.1; lists become tuples)."""
    try:
        if type_name in _SCALARS and v is not None:
            if type_name == "bool" and not isinstance(v, bool):
                raise ValueError
            return _SCALARS[type_name](v)
        if type_name.startswith("tuple[") and isinstance(v, (list, tuple)):
            inner = type_name[len("tuple[") : -1].split(", ")[0]
            return tuple(_coerce(x, inner, where) if not isinstance(x, list) else tuple(x) for x in v)
    except (TypeError, ValueError):
        raise SgbenchError(f"Expected {where} to be {type_name} but got {v!r}") from None
    return v


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply `a.b=value` overrides (values parsed as YAML) to a nested dict, in place."""
    for item in overrides:
        if "=" not in item:
            raise SgbenchError(f"Expected an override as key=value (e.g. train.steps=100) but got '{item}'")
        key, value = item.split("=", 1)
        node = raw
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise SgbenchError(f"Override '{key}': '{p}' is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise SgbenchError(f"Override '{item}': the value is not valid YAML") from None
    return raw


def load_yaml(path: str | Path, what: str = "recipe") -> dict:
    """A YAML file whose top level is a mapping (shipped paths like recipes/... resolve from anywhere)."""
    path = resources.resolve(path)
    if not path.is_file():
        raise SgbenchError(f"{what.capitalize()} not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
        raise SgbenchError(f"{what.capitalize()} {path} is not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SgbenchError(f"{what.capitalize()} {path} cannot be read: {e}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise SgbenchError(f"Expected a YAML mapping (section: value lines) in {what} {path} but got a {type(raw).__name__}")
    return raw


def load_train_recipe(path: str | Path, overrides: list[str] = ()) -> TrainRecipe:
    raw = apply_overrides(load_yaml(path), list(overrides))
    path = resources.resolve(path)
    allowed = {"name", "model", "data", "train", "out"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SgbenchError(f"Unknown recipe section(s) {unknown} in {path}; allowed: {sorted(allowed)}")
    if "model" not in raw:
        raise SgbenchError(f"Recipe {path} has no 'model' section")
    recipe = TrainRecipe(
        name=str(raw.get("name", path.stem)),
        model=strict_dataclass(ModelSection, raw["model"], "model"),
        data=strict_dataclass(DataSection, raw.get("data", {}), "data"),
        train=strict_dataclass(TrainSection, raw.get("train", {}), "train"),
        out=str(raw.get("out", f"runs/train/{raw.get('name', path.stem)}")),
    )
    recipe.model.build()  # validates routes / rates before any training starts
    t = recipe.train
    if t.steps <= 0 or t.batch_size <= 0:
        raise SgbenchError(f"Expected train.steps and train.batch_size > 0 but got {t.steps} and {t.batch_size}")
    if not 0.0 <= t.class_dropout < 1.0:
        raise SgbenchError(f"Expected train.class_dropout in [0, 1) but got {t.class_dropout}")
    if t.time_sampling not in TIME_SAMPLINGS:
        raise SgbenchError(f"Unknown train.time_sampling '{t.time_sampling}'; expected one of {', '.join(TIME_SAMPLINGS)}")
    if t.time_std <= 0:
        raise SgbenchError(f"Expected train.time_std > 0 but got {t.time_std}")
    if t.probe_every < 0 or t.probe_scenes < 1:
        raise SgbenchError(f"Expected train.probe_every >= 0 (0: off) and train.probe_scenes >= 1 but got {t.probe_every} and {t.probe_scenes}")
    if recipe.data.workers < 0:
        raise SgbenchError(f"Expected data.workers >= 0 (0 renders scenes in the training process) but got {recipe.data.workers}")
    if recipe.data.dataset == "animal_scenes":
        if recipe.data.objects not in OBJECT_STYLES or recipe.data.layout not in LAYOUTS:
            raise SgbenchError(f"Expected data.objects in {', '.join(OBJECT_STYLES)} and data.layout in {', '.join(LAYOUTS)} "
                               f"but got {recipe.data.objects!r} and {recipe.data.layout!r}")
        if recipe.data.caption_families is not None and not isinstance(recipe.data.caption_families, dict):
            raise SgbenchError(f"Expected data.caption_families to map families to weights, e.g. {{position: 3}}, "
                               f"but got {recipe.data.caption_families!r}")
        check_family_weights(recipe.data.caption_families)
    if t.precision not in PRECISIONS:
        raise SgbenchError(f"Unknown train.precision '{t.precision}'; expected one of {', '.join(PRECISIONS)}")
    return recipe


def recipe_to_dict(recipe) -> dict:
    return dataclasses.asdict(recipe)
