"""Specifications of the sparse backbone (docs/design.md, "Sparsity")."""

import math
from dataclasses import replace

import pytest
import torch

from sgbench.utils.errors import SgbenchError
from sgbench.models import Masking, Route, SiT, num_kept, parse_route, preset, select_tokens
from sgbench.core.seeding import sample_generators


def randomised(model: SiT) -> SiT:
    """adaLN-Zero starts at the identity: perturb every weight so blocks actually compute."""
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.2
    return model.eval()


def inputs(batch=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, size, size, generator=g), torch.rand(batch, generator=g), torch.arange(batch) % 3


ROUTED = preset("Tiny-test", routes=(Route(1, 2, 0.5),))
MASKED = preset("Tiny-test", masking=Masking(rate=0.5, decoder_depth=2, decoder_width=16, decoder_heads=2))


@pytest.mark.slow
def test_presets_match_dit_sizes():
    model = SiT(preset("SiT-XL/2"))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6) == 675  # DiT-XL/2's 675M
    assert preset("SiT-XL/2").num_tokens == 256


@pytest.mark.parametrize("n,gamma", [(256, 0.5), (256, 0.9), (64, 0.5), (64, 0.33), (16, 0.99), (10, 0.0)])
def test_kept_token_rounding(n, gamma):
    assert num_kept(n, gamma) == n - math.floor(n * gamma)
    assert select_tokens(2, n, gamma, None, "cpu").shape == (2, num_kept(n, gamma))


def test_routing_at_gamma_zero_is_exactly_the_dense_forward():
    routed = randomised(SiT(ROUTED))
    dense = SiT(replace(ROUTED, routes=()))
    dense.load_state_dict(routed.state_dict())
    x, t, y = inputs()
    assert torch.equal(routed(x, t, y, sparsity=0.0), dense.eval()(x, t, y))


def test_masking_at_gamma_zero_is_exactly_the_unmasked_forward():
    model = randomised(SiT(MASKED))
    x, t, y = inputs()
    all_tokens = torch.arange(MASKED.num_tokens).expand(3, -1)
    assert torch.equal(model(x, t, y, sparsity=0.0), model(x, t, y, keep=all_tokens))


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9])
def test_route_processes_exactly_the_kept_tokens_and_restores_the_dropped(gamma):
    model = randomised(SiT(ROUTED))
    seen = {}
    hooks = [
        model.blocks[i].register_forward_hook(lambda m, a, o, i=i: seen.__setitem__(i, (a[0].clone(), o.clone())))
        for i in range(ROUTED.depth)
    ]
    x, t, y = inputs()
    gens = sample_generators(0, range(3), 2, 0, 0)
    model(x, t, y, sparsity=gamma, generators=gens)
    for h in hooks:
        h.remove()
    N, kept = ROUTED.num_tokens, num_kept(ROUTED.num_tokens, gamma)
    assert seen[0][0].shape[1] == N and seen[3][0].shape[1] == N
    assert seen[1][0].shape[1] == kept and seen[2][0].shape[1] == kept  # blocks 1..2 inclusive
    before, after = seen[0][1], seen[3][0]  # tokens entering the route, tokens leaving it
    idx = select_tokens(3, N, gamma, sample_generators(0, range(3), 2, 0, 0), "cpu")
    dropped = torch.ones(3, N, dtype=torch.bool)
    dropped.scatter_(1, idx, False)
    assert torch.equal(before[dropped], after[dropped])
    assert not torch.allclose(before[~dropped], after[~dropped])


def test_masking_encoder_sees_kept_tokens_decoder_sees_all():
    model = randomised(SiT(MASKED))
    shapes = []
    model.blocks[0].register_forward_hook(lambda m, a, o: shapes.append(a[0].shape[1]))
    model.decoder_blocks[0].register_forward_hook(lambda m, a, o: shapes.append(a[0].shape[1]))
    x, t, y = inputs()
    model(x, t, y, sparsity=0.75, generators=sample_generators(0, range(3), 2))
    assert shapes == [num_kept(16, 0.75), 16]


@pytest.mark.parametrize("config", [ROUTED, MASKED], ids=["routing", "masking"])
def test_a_samples_selection_does_not_depend_on_its_batch(config):
    model = randomised(SiT(config))
    x, t, y = inputs(batch=4)
    full = model(x, t, y, sparsity=0.5, generators=sample_generators(7, range(4), 2, 3, 1))
    alone = model(x[2:3], t[2:3], y[2:3], sparsity=0.5, generators=sample_generators(7, [2], 2, 3, 1))
    torch.testing.assert_close(full[2:3], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rows", [1, 2, 3, 10, 64])
def test_per_sample_layers_give_each_row_the_bits_it_has_alone(rows):
    """Per-sample vectors (timestep, pooled text, adaLN) and patch embeddings: a row's result never
    depends on how many rows share the call (BLAS picks kernels by row count; docs/design.md, "Numerics")."""
    from sgbench.models.sit import PatchEmbed, PerSampleLinear

    linear, embed = PerSampleLinear(96, 160), PatchEmbed(4, 32, 1)
    x, images = torch.randn(rows, 96), torch.randn(rows, 4, 4, 4)
    with torch.no_grad():
        assert torch.equal(linear(x), torch.cat([linear(x[i : i + 1]) for i in range(rows)]))
        assert torch.equal(embed(images), torch.cat([embed(images[i : i + 1]) for i in range(rows)]))
        torch.testing.assert_close(linear(x), torch.nn.functional.linear(x, linear.weight, linear.bias))
        conv = torch.nn.functional.conv2d(images, embed.weight, embed.bias, stride=1).flatten(2).transpose(1, 2)
        torch.testing.assert_close(embed(images), conv)  # the Conv2d it replaces, token order included


def test_sparsity_changes_the_output_and_none_means_training_rates():
    model = randomised(SiT(ROUTED))
    x, t, y = inputs()
    dense = model(x, t, y, sparsity=0.0)
    assert not torch.allclose(dense, model(x, t, y, sparsity=0.5, generators=sample_generators(0, range(3), 2)))
    torch.manual_seed(3)
    a = model(x, t, y, sparsity=None)
    torch.manual_seed(3)
    b = model(x, t, y, sparsity=0.5)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(routes=(Route(2, 9, 0.5),)), "outside the model's blocks"),
        (dict(routes=(Route(1, 2, 1.0),)), "in [0, 1)"),
        (dict(routes=(Route(0, 2, 0.5), Route(2, 3, 0.5))), "must not overlap"),
        (dict(routes=(Route(0, 1, 0.5),), masking=Masking()), "either routing"),
        (dict(masking=Masking(rate=-0.1)), "in [0, 1)"),
    ],
)
def test_bad_sparsity_configs_are_refused(kwargs, message):
    with pytest.raises(SgbenchError, match=message.replace("[", r"\[").replace(")", r"\)")):
        preset("Tiny-test", **kwargs)


def test_unknown_preset_suggests_close_names():
    with pytest.raises(SgbenchError, match="Did you mean SiT-XL/2"):
        preset("SiT-XL2")


def test_parse_route():
    assert parse_route("2:24") == Route(2, 24, 0.5)
    assert parse_route("2:24:0.25") == Route(2, 24, 0.25)
    with pytest.raises(SgbenchError, match="START:END"):
        parse_route("2-24")


def test_explicit_route_selection_equals_the_drawn_one():
    """keep= (one index tensor per route) is what the generators would have selected."""
    config = preset("Tiny-test", depth=6, routes=(Route(1, 2, 0.5), Route(4, 4, 0.25)))
    model = randomised(SiT(config))
    x, t, y = inputs()
    drawn = model(x, t, y, sparsity=0.5, generators=sample_generators(0, range(3), 2))
    again = sample_generators(0, range(3), 2)  # the same per-sample streams, drawn route by route
    keep = tuple(select_tokens(3, 16, 0.5, again, "cpu") for _ in config.routes)
    assert torch.equal(model(x, t, y, keep=keep), drawn)
    with pytest.raises(SgbenchError, match="one index tensor per route"):
        model(x, t, y, keep=keep[0])


def test_edm_preconditioning_is_the_edm_denoiser_as_a_velocity():
    """v = (D - x_t) / (1 - t) with D = c_skip x + c_out F(c_in x, log(sigma) / 4), sigma = (1 - t) / t."""
    from sgbench.models import EDM

    config = preset("Tiny-test", edm=EDM(sigma_data=0.5), time_scale=1.0)
    model = randomised(SiT(config))
    plain = SiT(replace(config, edm=None))
    plain.load_state_dict(model.state_dict())
    x, t, y = inputs()
    t = t * 0.8 + 0.1
    sigma, sd = ((1 - t) / t).reshape(-1, 1, 1, 1), 0.5
    x_edm = x / t.reshape(-1, 1, 1, 1)
    c_in, c_skip = 1 / (sd**2 + sigma**2).sqrt(), sd**2 / (sd**2 + sigma**2)
    c_out = sigma * sd / (sd**2 + sigma**2).sqrt()
    D = c_skip * x_edm + c_out * plain.eval()(c_in * x_edm, sigma.flatten().log() / 4, y)
    torch.testing.assert_close(model(x, t, y), (D - x) / (1 - t.reshape(-1, 1, 1, 1)), atol=1e-5, rtol=1e-5)


def test_data_prediction_is_the_network_output_as_a_velocity():
    """prediction 'data': the network outputs x_hat and the model returns v = (x_hat - x_t) / (1 - t), so
    an Euler step from t to 1 lands on x_hat; 1 - t is clamped at MIN_DATA_DENOMINATOR."""
    from sgbench.models.sit import MIN_DATA_DENOMINATOR

    config = preset("Tiny-test", prediction="data")
    model = randomised(SiT(config))
    plain = SiT(replace(config, prediction="velocity"))
    plain.load_state_dict(model.state_dict())
    x, t, y = inputs()
    t = torch.tensor([0.0, 0.5, 0.99])
    x_hat = plain.eval()(x, t, y)
    v = model(x, t, y)
    shape = (-1, 1, 1, 1)
    torch.testing.assert_close(v[:2], (x_hat[:2] - x[:2]) / (1 - t[:2].reshape(shape)))
    torch.testing.assert_close(v[2:], (x_hat[2:] - x[2:]) / MIN_DATA_DENOMINATOR)
    torch.testing.assert_close(x[:2] + (1 - t[:2].reshape(shape)) * v[:2], x_hat[:2])
    assert "prediction" not in plain.config.to_dict()  # velocity models' stored configs are unchanged
    assert type(config).from_dict(config.to_dict()) == config


def test_unknown_prediction_is_refused():
    with pytest.raises(SgbenchError, match="Unknown prediction 'noise'; allowed: velocity, data"):
        preset("Tiny-test", prediction="noise")
