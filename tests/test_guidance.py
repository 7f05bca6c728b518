"""Specifications of the guidance registry: formula identities, invariances, execution, user errors."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.utils.errors import SgbenchError
from sgbench.core.guidance import REGISTRY, Branch, Models, Schedule, build_guidance, combine, plan, run_branches
from sgbench.core.guidance.base import random_labels
from sgbench.models.sit import Masking, Route, SiT, num_kept, preset
from sgbench.core.seeding import TOKENS, sample_generators

SEED, STEP, T = 7, 3, 0.4
ALL = list(REGISTRY)
SPARSE = {"sg": dict(gs=0.25, gw=0.75), "cfg+sg": dict(gs=0.25, gw=0.5), "ag+sg": dict(gs=0.25, guide_sparsity=0.5)}


def randomised(config, seed=0) -> SiT:
    """DiT's init zeroes the output layer and adaLN: perturb every parameter so branches differ."""
    torch.manual_seed(seed)
    model = SiT(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    return model


ROUTED = preset("Tiny-test", routes=(Route(1, 2, 0.5),))
MASKED = preset("Tiny-test", masking=Masking(rate=0.5, decoder_depth=1, decoder_width=16, decoder_heads=2))


@pytest.fixture(scope="module")
def routed() -> SiT:
    return randomised(ROUTED)


@pytest.fixture(scope="module")
def guide() -> SiT:
    return randomised(ROUTED, seed=1)


def inputs(config, indices=(0, 1, 2, 3)):
    g = torch.Generator().manual_seed(123)
    x = torch.randn(len(indices), config.in_channels, config.input_size, config.input_size, generator=g)
    labels = torch.tensor([i % config.num_classes for i in indices])
    return x, labels, list(indices)


def velocity(method, models, x, labels, indices, t=T, state=None):
    with torch.no_grad():
        state = method.new_state(len(indices)) if state is None else state
        return method.velocity(models, x, t, step=STEP, labels=labels, indices=indices, seed=SEED, state=state)


def direct(model, x, labels, indices, gamma, branch, t=T):
    """One plain forward, with branch `branch`'s token generators: the contract run_branches must keep."""
    gens = sample_generators(SEED, indices, TOKENS, STEP, branch) if gamma > 0 else None
    with torch.no_grad():
        return model(x, torch.full((len(indices),), t), labels, sparsity=gamma, generators=gens)


# ----------------------------------------------------------------------------------------------------
# Formula identities


@pytest.mark.parametrize("name", ALL)
def test_scale_one_is_the_strong_branch_alone(name, routed, guide):
    method = build_guidance(name, **({} if name == "unguided" else {"scale": 1.0}), **SPARSE.get(name, {}))
    assert method.branches(T) == [method.strong(T)]  # w = 1: the weak branch does not even run
    x, labels, idx = inputs(ROUTED)
    expected = direct(routed, x, labels, idx, method.strong(T).sparsity, branch=0)
    assert torch.allclose(velocity(method, Models(routed, guide), x, labels, idx), expected, atol=1e-5)


def test_combine_is_weak_plus_w_times_difference():
    weak, strong = torch.randn(2, 3), torch.randn(2, 3)
    assert torch.equal(combine(weak, strong, 1.0), strong)
    assert torch.allclose(combine(weak, strong, 2.5), weak + 2.5 * (strong - weak))


def test_sg_is_eq7_with_both_branches_conditional(routed):
    x, labels, idx = inputs(ROUTED)
    method = build_guidance("sg", scale=2.0, gs=0.25, gw=0.75)
    assert [b.condition for b in method.branches(T)] == ["cond", "cond"]
    strong = direct(routed, x, labels, idx, 0.25, branch=0)
    weak = direct(routed, x, labels, idx, 0.75, branch=1)
    got = velocity(method, Models(routed), x, labels, idx)
    assert torch.allclose(got, 2.0 * strong + (1 - 2.0) * weak, atol=1e-5)


def test_cfg_is_eq3(routed):
    x, labels, idx = inputs(ROUTED)
    cond = direct(routed, x, labels, idx, 0.0, 0)
    null = direct(routed, x, torch.full_like(labels, routed.null_class), idx, 0.0, 1)
    got = velocity(build_guidance("cfg", scale=3.0), Models(routed), x, labels, idx)
    assert torch.allclose(got, null + 3.0 * (cond - null), atol=1e-5)


def test_cfg_sg_with_both_sparsities_zero_is_cfg(routed):
    x, labels, idx = inputs(ROUTED)
    cfg = velocity(build_guidance("cfg", scale=2.0), Models(routed), x, labels, idx)
    both = velocity(build_guidance("cfg+sg", scale=2.0, gs=0, gw=0), Models(routed), x, labels, idx)
    assert torch.equal(cfg, both)


def test_cfg_sg_weak_branch_is_null_and_sparse(routed):
    x, labels, idx = inputs(ROUTED)
    strong = direct(routed, x, labels, idx, 0.25, 0)
    weak = direct(routed, x, torch.full_like(labels, routed.null_class), idx, 0.5, 1)
    got = velocity(build_guidance("cfg+sg", scale=2.0, gs=0.25, gw=0.5), Models(routed), x, labels, idx)
    assert torch.allclose(got, weak + 2.0 * (strong - weak), atol=1e-5)


def test_ag_with_the_main_model_as_guide_is_unguided(routed):
    x, labels, idx = inputs(ROUTED)
    ag = velocity(build_guidance("ag", scale=2.0), Models(routed, guide=routed), x, labels, idx)
    assert torch.allclose(ag, velocity(build_guidance("unguided"), Models(routed), x, labels, idx), atol=1e-6)


def test_ag_and_ag_sg_use_the_guide_in_the_weak_branch(routed, guide):
    x, labels, idx = inputs(ROUTED)
    strong, weak = direct(routed, x, labels, idx, 0.0, 0), direct(guide, x, labels, idx, 0.0, 1)
    got = velocity(build_guidance("ag", scale=2.0), Models(routed, guide), x, labels, idx)
    assert torch.allclose(got, weak + 2.0 * (strong - weak), atol=1e-5)
    method = build_guidance("ag+sg", scale=2.0, gs=0.25, guide_sparsity=0.5)
    strong, weak = direct(routed, x, labels, idx, 0.25, 0), direct(guide, x, labels, idx, 0.5, 1)
    got = velocity(method, Models(routed, guide), x, labels, idx)
    assert torch.allclose(got, weak + 2.0 * (strong - weak), atol=1e-5)


def test_icg_weak_branch_uses_an_independent_random_class(routed):
    x, labels, idx = inputs(ROUTED)
    c_rand = random_labels(SEED, idx, STEP, ROUTED.num_classes)
    assert c_rand.min() >= 0 and c_rand.max() < ROUTED.num_classes  # never the null class
    assert not torch.equal(c_rand, random_labels(SEED, idx, STEP + 1, ROUTED.num_classes))  # per step
    strong, weak = direct(routed, x, labels, idx, 0.0, 0), direct(routed, x, c_rand, idx, 0.0, 1)
    got = velocity(build_guidance("icg", scale=2.0), Models(routed), x, labels, idx)
    assert torch.allclose(got, weak + 2.0 * (strong - weak), atol=1e-5)


def test_apg_with_eta_one_and_no_momentum_or_threshold_is_cfg(routed):
    x, labels, idx = inputs(ROUTED)
    apg = build_guidance("apg", scale=2.5, eta=1.0, momentum=0.0, norm_threshold=0.0)
    cfg = build_guidance("cfg", scale=2.5)
    assert torch.allclose(velocity(apg, Models(routed), x, labels, idx), velocity(cfg, Models(routed), x, labels, idx), atol=1e-4)


def test_apg_default_removes_the_parallel_part(routed):
    """eta = 0, no momentum, no threshold: x_hat - x_hat(c) is orthogonal to x_hat(c), per sample."""
    x, labels, idx = inputs(ROUTED)
    apg = build_guidance("apg", scale=3.0, momentum=0.0, norm_threshold=0.0)
    v = velocity(apg, Models(routed), x, labels, idx)
    v_cond = direct(routed, x, labels, idx, 0.0, 0)
    x_hat, x_cond = x + (1 - T) * v, x + (1 - T) * v_cond
    dot = ((x_hat - x_cond).double() * x_cond.double()).flatten(1).sum(1)
    assert dot.abs().max() < 1e-3 * (x_hat - x_cond).flatten(1).norm(dim=1).max()


def euler(method, models, x, labels, idx, steps=4, state=None):
    """A minimal Euler sampler from t = 0 to 1 (the real one is sgbench.sampling)."""
    state = method.new_state(len(idx)) if state is None else state
    for i in range(steps):
        with torch.no_grad():
            v = method.velocity(models, x, i / steps, step=i, labels=labels, indices=idx, seed=SEED, state=state)
        x = x + v / steps
    return x


def test_apg_momentum_resets_every_trajectory(routed):
    x, labels, idx = inputs(ROUTED)
    apg = build_guidance("apg", scale=4.0, momentum=-0.5, norm_threshold=1.0)
    first, second = euler(apg, Models(routed), x, labels, idx), euler(apg, Models(routed), x, labels, idx)
    assert torch.equal(first, second)
    stale = apg.new_state(len(idx))
    euler(apg, Models(routed), x, labels, idx, state=stale)
    assert not torch.allclose(euler(apg, Models(routed), x, labels, idx, state=stale), first)  # the reset matters


def test_sg_at_gs_zero_strong_branch_is_the_conditional_model(routed):
    x, labels, idx = inputs(ROUTED)
    method = build_guidance("sg", gs=0.0, gw=0.5)
    with torch.no_grad():
        strong, _ = run_branches(Models(routed), method.branches(T), x, T, step=STEP, labels=labels, indices=idx, seed=SEED)
        dense = routed(x, torch.full((4,), T), labels)
    assert torch.allclose(strong, dense, atol=1e-6)


# ----------------------------------------------------------------------------------------------------
# Schedules, interval


def test_schedules():
    assert Schedule.parse("0.3")(0.7) == 0.3
    lin = Schedule.parse("linear:0.2:0.6")
    assert lin(0) == pytest.approx(0.2) and lin(0.5) == pytest.approx(0.4) and lin(1) == pytest.approx(0.6)
    cos = Schedule.parse("cosine:0.6:0")
    assert cos(0) == pytest.approx(0.6) and cos(0.5) == pytest.approx(0.3) and cos(1) == pytest.approx(0.0)
    method = build_guidance("ag+sg")  # SG_FID: guide cosine 0.6 -> 0, main the mirror: they sum to 0.6
    for t in (0.0, 0.3, 0.9):
        strong, weak = method.branches(t)
        assert strong.sparsity + weak.sparsity == pytest.approx(0.6)
    assert build_guidance("sg", gs="linear:0:0.4", gw=0.8).branches(1.0)[0].sparsity == pytest.approx(0.4)


@pytest.mark.parametrize("name", [n for n in ALL if n != "unguided"])
def test_outside_the_interval_only_the_strong_branch_runs(name, routed, guide):
    method = build_guidance(name, scale=2.0, interval="0.5:0.9", **SPARSE.get(name, {}))
    assert len(method.branches(0.5)) == 2 and len(method.branches(0.9)) == 2  # inclusive
    assert method.branches(0.2) == [method.strong(0.2)] and method.branches(0.95) == [method.strong(0.95)]
    x, labels, idx = inputs(ROUTED)
    calls = []
    hook = routed.x_embedder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        v = velocity(method, Models(routed, guide), x, labels, idx, t=0.2)
    finally:
        hook.remove()
    assert calls == [4]  # one forward of the batch
    assert torch.allclose(v, direct(routed, x, labels, idx, method.strong(0.2).sparsity, 0, t=0.2), atol=1e-5)


# ----------------------------------------------------------------------------------------------------
# Execution: batching, shared prefix, batch-size invariance, forwards and tokens


def test_plan_batches_conditions_and_shares_prefixes():
    b = lambda model, cond, g, role: Branch(model, cond, g, role)  # noqa: E731
    cfg = plan([b("main", "cond", 0.0, "strong"), b("main", "null", 0.0, "weak")])
    assert [(f.conditions, f.sparsities) for f in cfg] == [(("cond", "null"), (0.0,))]
    sg = plan([b("main", "cond", 0.5, "strong"), b("main", "cond", 0.9, "weak")])
    assert [(f.conditions, f.sparsities) for f in sg] == [(("cond",), (0.5, 0.9))]  # one prefix, two suffixes
    ag = plan([b("main", "cond", 0.0, "strong"), b("guide", "cond", 0.0, "weak")])
    assert len(ag) == 2


@pytest.mark.parametrize("config", [ROUTED, MASKED], ids=["routed", "masked"])
@pytest.mark.parametrize("name", ALL)
def test_batched_equals_per_sample(name, config):
    model = randomised(config)
    models = Models(model, model)
    method = build_guidance(name, **({} if name == "unguided" else {"scale": 2.0}), **SPARSE.get(name, {}))
    x, labels, idx = inputs(config, indices=(5, 6, 7))
    batched = velocity(method, models, x, labels, idx)
    single = torch.cat([velocity(method, models, x[i : i + 1], labels[i : i + 1], [idx[i]]) for i in range(3)])
    assert torch.equal(batched, single)  # bit for bit: the model is batch-invariant (docs/design.md, "Numerics")


@pytest.mark.parametrize("name", ALL)
def test_forwards_and_tokens_match_the_plan(name, routed, guide):
    """Count prefix calls (patch embed), suffix calls (final layer) and tokens per block with hooks."""
    method = build_guidance(name, **({} if name == "unguided" else {"scale": 2.0}), **SPARSE.get(name, {}))
    B, N = 4, ROUTED.num_tokens
    seen = {"prefix": 0, "suffix": 0, "tokens": [0] * ROUTED.depth}
    hooks = []
    for model in {id(routed): routed, id(guide): guide}.values():
        hooks.append(model.x_embedder.register_forward_hook(lambda m, i, o: seen.__setitem__("prefix", seen["prefix"] + 1)))
        hooks.append(model.final_layer.register_forward_hook(lambda m, i, o: seen.__setitem__("suffix", seen["suffix"] + 1)))
        for j, blk in enumerate(model.blocks):
            hooks.append(blk.register_forward_hook(lambda m, i, o, j=j: seen["tokens"].__setitem__(j, seen["tokens"][j] + i[0].shape[0] * i[0].shape[1])))
    x, labels, idx = inputs(ROUTED)
    try:
        velocity(method, Models(routed, guide), x, labels, idx)
    finally:
        for h in hooks:
            h.remove()
    branches = method.branches(T)
    forwards = plan(branches)
    assert seen["prefix"] == len(forwards)
    assert seen["suffix"] == sum(len(f.sparsities) for f in forwards)
    expected = [0] * ROUTED.depth
    for f in forwards:
        for j in range(ROUTED.depth):
            if j < 1:  # block 0 is the shared prefix: once per condition
                expected[j] += len(f.conditions) * B * N
            else:
                expected[j] += sum(len(f.conditions) * B * (num_kept(N, g) if j <= 2 else N) for g in f.sparsities)
    assert seen["tokens"] == expected


# ----------------------------------------------------------------------------------------------------
# User errors: each message


@pytest.mark.parametrize(
    "name, params, message",
    [
        ("sg", dict(gs=0.9, gw=0.5), "Expected 0 <= gs < gw < 1 for sg (the weak branch drops more tokens) but got gs=0.9, gw=0.5"),
        ("sg", dict(gs=0.5, gw=0.5), "Expected 0 <= gs < gw < 1 for sg"),
        ("sg", dict(gs="linear:0:0.8", gw=0.6), "but got gs=linear:0:0.8, gw=0.6 at t=0.75"),
        ("cfg+sg", dict(gs=0.7, gw=0.2), "Expected 0 <= gs <= gw < 1 for cfg+sg"),
        ("sg", dict(gs=-0.1), "Expected gs in [0, 1) (the fraction of tokens dropped) but got -0.1"),
        ("sg", dict(gw=1.0), "Expected gw in [0, 1) (the fraction of tokens dropped) but got 1"),
        ("ag+sg", dict(guide_sparsity="cosine:1.2:0"), "Expected guide_sparsity in [0, 1)"),
        ("sg", dict(gs="cos:0.1:0.2"), "Expected a sparsity schedule as VALUE, linear:START:END or cosine:START:END but got 'cos:0.1:0.2'"),
        ("cfg", dict(gs=0.5), "Guidance 'cfg' does not take --gs: it takes --scale, --interval"),
        ("unguided", dict(scale=2.0), "Guidance 'unguided' does not take --scale: it takes no options"),
        ("apg", dict(norm_treshold=1.0), "does not take --norm-treshold: it takes --scale, --eta, --momentum, --norm-threshold, --interval"),
        ("cfg", dict(scale=0.5), "Expected scale to be a finite number >= 1 (1 = no guidance) but got 0.5"),
        ("cfg", dict(scale="big"), "Expected a number for cfg's scale but got 'big'"),
        ("cfg", dict(interval="0.8:0.2"), "Expected a guidance interval with 0 <= t_lo <= t_hi <= 1 but got 0.8:0.2"),
        ("cfg", dict(interval="early"), "Expected a guidance interval as T_LO:T_HI but got 'early'"),
        ("apg", dict(momentum=0.5), "Expected momentum in (-1, 0] (negative momentum; 0 = off) but got 0.5"),
        ("apg", dict(eta=2), "Expected eta in [0, 1] but got 2"),
        ("apg", dict(norm_threshold=-1), "Expected norm_threshold >= 0 (0 = off) but got -1"),
    ],
)
def test_parameter_errors(name, params, message):
    with pytest.raises(SgbenchError) as e:
        build_guidance(name, **params)
    assert message in str(e.value)


def test_unknown_name_suggests_the_closest_and_lists_all():
    with pytest.raises(SgbenchError) as e:
        build_guidance("cfg-sg")
    assert str(e.value) == (
        "Expected a guidance method but got 'cfg-sg'. Did you mean cfg+sg, cfg, ag+sg? "
        "Available: unguided, cfg, ag, icg, apg, sg, cfg+sg, ag+sg"
    )


@pytest.mark.parametrize("name", ["ag", "ag+sg"])
def test_guide_errors(name, routed):
    x, labels, idx = inputs(ROUTED)
    method = build_guidance(name)
    assert method.needs_guide
    with pytest.raises(SgbenchError, match="Expected a guide model \\(option --guide, a checkpoint\\) for this guidance but got none"):
        velocity(method, Models(routed), x, labels, idx)
    other = SiT(preset("Tiny-test", num_classes=5))
    with pytest.raises(SgbenchError, match=r"Expected the guide's num_classes to equal the main model's \(3\) but got 5"):
        velocity(method, Models(routed, other), x, labels, idx)
    other = SiT(preset("Tiny-test", in_channels=3))
    with pytest.raises(SgbenchError, match=r"Expected the guide's in_channels to equal the main model's \(1\) but got 3"):
        velocity(method, Models(routed, other), x, labels, idx)
    smaller = SiT(preset("Tiny-test", depth=2, hidden_size=16))  # a smaller guide is fine
    velocity(method, Models(routed, smaller), x, labels, idx)


def test_params_are_resolved_and_json_ready():
    import json

    method = build_guidance("sg", gs="cosine:0.5:0.1", scale="2")
    assert method.params == {"scale": 2.0, "gs": "cosine:0.5:0.1", "gw": 0.9, "interval": [0.0, 1.0]}
    json.dumps(method.params)
    assert build_guidance("sg", **method.params) == method  # round trip
    # canonical: one form however a setting was spelled (a run's identity and the leaderboard store it)
    assert build_guidance("sg").params == build_guidance("sg", gs="0.5", gw=0.9, scale="1.5", interval="0:1").params


def test_cli_guidance_list_shows_every_method():
    result = CliRunner().invoke(app, ["guidance", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in REGISTRY:
        assert name in result.output
    assert "--momentum -0.5" in result.output and "--guide CKPT (required)" in result.output
