"""Specifications of text conditioning: the backbone, the encoders, guidance on prompts, checkpoints."""

from __future__ import annotations

import copy
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import assert_float32_close

from sgbench.core.conditioning import ClassConditioning, PromptConditioning, PromptSet, random_labels
from sgbench.utils.errors import SgbenchError
from sgbench.core.guidance import REGISTRY, Models, build_guidance
from sgbench.models.checkpoint import load_model, save_model
from sgbench.models.sit import Masking, Route, SiT, num_kept, preset
from sgbench.core.seeding import TOKENS, sample_generators
from sgbench.text import TextConfig, TextEmbedding
from test_guidance import randomised  # every parameter perturbed: adaLN-Zero and zeroed cross-attention start at the identity

FIXTURES = Path(__file__).parent / "fixtures"
VOCAB = ("a", "photo", "of", "bear", "cat", "dog", "red", "blue", "and", "left")
TEXT = TextConfig("embedded", width=16, heads=2, max_length=8, vocabulary=VOCAB)
ROUTED = preset("Tiny-test", in_channels=3, num_classes=0, text=TEXT, routes=(Route(1, 2, 0.5),), name="text-routed")
MASKED = preset(
    "Tiny-test", in_channels=3, num_classes=0, text=TEXT, name="text-masked",
    masking=Masking(rate=0.5, decoder_depth=1, decoder_width=16, decoder_heads=2),
)
PROMPTS = ["a red bear", "a photo of a cat and dog", "a blue dog left of a bear", "a cat"]
SEED, STEP, T = 7, 3, 0.4


@pytest.fixture(scope="module")
def routed() -> SiT:
    return randomised(ROUTED)


def inputs(config, batch=3):
    g = torch.Generator().manual_seed(123)
    return torch.randn(batch, config.in_channels, config.input_size, config.input_size, generator=g), torch.rand(batch, generator=g)


# ----------------------------------------------------------------------------------------------------
# Class models are untouched


def test_class_models_give_the_outputs_recorded_before_text_conditioning():
    sys.path.insert(0, str(FIXTURES))
    from class_forward import outputs

    recorded = load_file(str(FIXTURES / "class_forward.safetensors"))
    now = outputs()
    assert now.keys() == recorded.keys()
    for key in now:  # recorded on another CPU, before batch-invariant layers: float32-close, not bit-equal
        assert_float32_close(now[key], recorded[key], msg=key)


def test_class_configs_are_stored_as_before():
    assert "text" not in preset("Animal-T/4").to_dict()
    assert not any("cross_attn" in k or "text_encoder" in k for k in SiT(preset("Tiny-test")).state_dict())


# ----------------------------------------------------------------------------------------------------
# The backbone


def test_text_routing_at_gamma_zero_is_exactly_the_dense_forward(routed):
    dense = SiT(replace(ROUTED, routes=())).eval()
    dense.load_state_dict(routed.state_dict())
    x, t = inputs(ROUTED)
    y = routed.encode_text(PROMPTS[:3])
    assert torch.equal(routed(x, t, y, sparsity=0.0), dense(x, t, y))


def test_text_masking_at_gamma_zero_is_exactly_the_unmasked_forward():
    model = randomised(MASKED)
    x, t = inputs(MASKED)
    y = model.encode_text(PROMPTS[:3])
    all_tokens = torch.arange(MASKED.num_tokens).expand(3, -1)
    assert torch.equal(model(x, t, y, sparsity=0.0), model(x, t, y, keep=all_tokens))


@pytest.mark.parametrize("config", [ROUTED, MASKED], ids=["routing", "masking"])
def test_text_tokens_are_never_dropped(config):
    model = randomised(config)
    seen = []
    blocks = [*model.blocks, *getattr(model, "decoder_blocks", [])]
    hooks = [b.cross_attn.register_forward_hook(lambda m, a, o: seen.append((a[0].shape[1], a[1].shape[1]))) for b in blocks]
    x, t = inputs(config)
    model(x, t, model.encode_text(PROMPTS[:3]), sparsity=0.75, generators=sample_generators(0, range(3), TOKENS, 0, 0))
    for h in hooks:
        h.remove()
    N, kept, L = config.num_tokens, num_kept(config.num_tokens, 0.75), TEXT.max_length
    assert all(text_tokens == L for _, text_tokens in seen)  # every block reads every text token
    image_tokens = [n for n, _ in seen]
    assert image_tokens == ([N, kept, kept, N] if config.routes else [kept] * 4 + [N])


def test_the_prompt_changes_the_output_and_padding_does_not(routed):
    x, t = inputs(ROUTED, batch=2)
    y = routed.encode_text(["a red bear", "a blue bear"])
    v = routed(x, t, y)
    assert not torch.allclose(v[0], routed(x[1:], t[1:], y.select(torch.tensor([0])))[0])
    longer = replace(TEXT, max_length=12)  # more padding: same model output
    padded = SiT(replace(ROUTED, text=longer)).eval()
    state = routed.state_dict()
    state["text_encoder.base.position"] = torch.cat([state["text_encoder.base.position"], torch.zeros(1, 4, 16)], 1)
    padded.load_state_dict(state)
    torch.testing.assert_close(padded(x, t, padded.encode_text(["a red bear", "a blue bear"])), v, rtol=1e-5, atol=1e-5)


def test_a_new_model_tells_words_apart_and_starts_text_at_zero():
    """Words at unit scale and zero residual branches: distinct words start nearly orthogonal. (With
    GPT-sized 0.02 embeddings and a final norm, every prompt encoded alike after 300 steps.) The
    pooled text enters c at zero and cross-attention adds zero, as adaLN-Zero."""
    torch.manual_seed(0)
    model = SiT(ROUTED)
    y = model.encode_text(["a red bear", "a blue dog"])
    tokens = torch.nn.functional.normalize(y.tokens[0, :4], dim=-1)  # start, a, red, bear
    assert ((tokens @ tokens.T) - torch.eye(4)).abs().max() < 0.5
    assert (y.pooled[0] - y.pooled[1]).norm() > 0.3 * y.pooled[0].norm()
    assert torch.equal(model.pooled_embedder(y.pooled), torch.zeros(2, ROUTED.hidden_size))
    assert all(torch.equal(b.cross_attn.proj.weight, torch.zeros_like(b.cross_attn.proj.weight)) for b in model.blocks)


def test_start_pooling_is_the_start_tokens_output_which_sees_word_order():
    """The adaLN condition. "mean": a fresh model's tokens are each word's embedding plus its position's,
    so their mean is the same for "a cat left of a dog" and "a dog left of a cat" (order reaches it only
    through what the layers learn). "start": the start token's output, which attends to every word at
    its position."""
    order = ["a cat left of a dog", "a dog left of a cat"]
    torch.manual_seed(0)
    y = SiT(ROUTED).encode_text(order)
    torch.testing.assert_close(y.pooled[0], y.pooled[1], rtol=1e-5, atol=1e-5)
    torch.manual_seed(0)
    trained = randomised(replace(ROUTED, text=replace(TEXT, pooling="start")))
    y = trained.encode_text(order)
    assert torch.equal(y.pooled, y.tokens[:, 0])
    assert (y.pooled[0] - y.pooled[1]).norm() > 1e-3 * y.pooled[0].norm()


def test_text_configs_stored_before_pooling_load_as_mean_pooling_and_unknown_pooling_is_refused():
    stored = TEXT.to_dict()
    del stored["pooling"]
    assert TextConfig.from_dict(stored).pooling == "mean"
    with pytest.raises(SgbenchError, match="Expected text pooling in mean, start but got 'cls'"):
        replace(TEXT, pooling="cls")


def test_encoding_is_per_prompt_not_per_batch(routed):
    together = routed.encode_text(PROMPTS)
    alone = routed.encode_text(PROMPTS[2:3])
    torch.testing.assert_close(together.select(torch.tensor([2])).tokens, alone.tokens, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(together.pooled[2:3], alone.pooled, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "prompt,message",
    [("a green bear", "the word 'green', which is not in this model's vocabulary"),
     ("a bear and a cat and a dog", "at most 7 words for this model but got 8")],
)
def test_prompts_the_tokenizer_cannot_take_are_one_clear_error(routed, prompt, message):
    with pytest.raises(SgbenchError, match=message):
        routed.encode_text([prompt])


def test_punctuation_and_case_do_not_matter(routed):
    a, b = routed.encode_text(["A red bear."]), routed.encode_text(["a red bear"])
    assert torch.equal(a.tokens, b.tokens)


def test_conditions_of_the_wrong_kind_are_refused(routed):
    with pytest.raises(SgbenchError, match="class-conditional: it takes class labels, not prompts"):
        SiT(preset("Tiny-test")).encode_text(["a bear"])
    x, _ = inputs(ROUTED)
    with pytest.raises(SgbenchError, match="is a text model: it takes prompts, not class labels"):
        build_guidance("cfg", scale=2.0).velocity(Models(routed), x, T, step=0, indices=[0, 1, 2], seed=0, state=None,
                                                  labels=torch.tensor([0, 1, 2]))
    with pytest.raises(SgbenchError, match="num_classes 0"):
        preset("Tiny-test", text=TEXT)
    with pytest.raises(SgbenchError, match="guide to be a text model like the main model"):
        method = build_guidance("ag", scale=2.0)
        method.velocity(Models(routed, SiT(preset("Tiny-test", in_channels=3)).eval()), x, T, step=0, indices=[0, 1, 2],
                        seed=0, state=None, conditioning=PromptConditioning(PromptSet(PROMPTS), torch.tensor([0, 1, 2])))


# ----------------------------------------------------------------------------------------------------
# Guidance on prompts: the same formulas, conditions as prompts


def conditioning(ids=(0, 1, 2, 3)) -> PromptConditioning:
    return PromptConditioning(PromptSet(PROMPTS), torch.tensor(ids))


def velocity(method, models, x, cond, indices):
    with torch.no_grad():
        return method.velocity(models, x, T, step=STEP, indices=indices, seed=SEED, state=method.new_state(len(indices)),
                               conditioning=cond)


def direct(model, x, prompts, indices, gamma, branch):
    """One plain forward on freshly encoded prompts, with branch `branch`'s token generators."""
    gens = sample_generators(SEED, indices, TOKENS, STEP, branch) if gamma > 0 else None
    with torch.no_grad():
        return model(x, torch.full((len(indices),), T), model.encode_text(prompts), sparsity=gamma, generators=gens)


def test_the_null_condition_is_the_empty_prompt(routed):
    null = conditioning().batch("null", model=routed, seed=SEED, indices=[0, 1, 2, 3], step=STEP)
    empty = routed.encode_text([""] * 4)
    torch.testing.assert_close(null.tokens, empty.tokens, rtol=1e-5, atol=1e-6)
    assert null.mask[:, 0].all() and not null.mask[:, 1:].any()  # the start token alone
    x, _ = inputs(ROUTED, batch=4)
    idx = [0, 1, 2, 3]
    cond, uncond = direct(routed, x, PROMPTS, idx, 0.0, 0), direct(routed, x, [""] * 4, idx, 0.0, 1)
    got = velocity(build_guidance("cfg", scale=3.0), Models(routed), x, conditioning(), idx)
    torch.testing.assert_close(got, uncond + 3.0 * (cond - uncond), rtol=1e-4, atol=1e-5)


def test_icg_draws_a_prompt_per_sample_and_step_independent_of_the_batch(routed):
    idx = [10, 11, 12, 13, 14, 15, 16, 17]
    draws = random_labels(SEED, idx, STEP, len(PROMPTS))
    alone = torch.cat([random_labels(SEED, [i], STEP, len(PROMPTS)) for i in idx])
    assert torch.equal(draws, alone) and draws.min() >= 0 and draws.max() < len(PROMPTS)
    assert not torch.equal(draws, random_labels(SEED, idx, STEP + 1, len(PROMPTS)))  # per step
    assert len(set(draws.tolist())) > 1  # per sample
    x, _ = inputs(ROUTED, batch=4)
    idx = [0, 1, 2, 3]
    c_rand = [PROMPTS[i] for i in random_labels(SEED, idx, STEP, len(PROMPTS))]
    cond, rand = direct(routed, x, PROMPTS, idx, 0.0, 0), direct(routed, x, c_rand, idx, 0.0, 1)
    got = velocity(build_guidance("icg", scale=2.0), Models(routed), x, conditioning(), idx)
    torch.testing.assert_close(got, rand + 2.0 * (cond - rand), rtol=1e-4, atol=1e-5)
    sub = velocity(build_guidance("icg", scale=2.0), Models(routed), x[1:3], conditioning((1, 2)), idx[1:3])
    torch.testing.assert_close(sub, got[1:3], rtol=1e-4, atol=1e-5)  # a sample's draw ignores its batch


SPARSE = {"sg": dict(gs=0.25, gw=0.75), "cfg+sg": dict(gs=0.25, gw=0.5), "ag+sg": dict(gs=0.25, guide_sparsity=0.5)}


@pytest.mark.parametrize("name", list(REGISTRY))
def test_every_method_runs_its_formula_on_a_text_model(name, routed):
    """Each branch equals a plain forward on its prompts; the combination is the method's own."""
    guide = randomised(ROUTED, seed=1)
    method = build_guidance(name, **({} if name == "unguided" else {"scale": 2.0}), **SPARSE.get(name, {}))
    x, _ = inputs(ROUTED, batch=4)
    idx = [0, 1, 2, 3]
    c_rand = [PROMPTS[i] for i in random_labels(SEED, idx, STEP, len(PROMPTS))]
    prompts = {"cond": PROMPTS, "null": [""] * 4, "random": c_rand}
    outs = []
    for k, b in enumerate(method.branches(T)):
        model = routed if b.model == "main" else guide
        outs.append(direct(model, x, prompts[b.condition], idx, b.sparsity, k))
    expected = outs[0] if len(outs) == 1 else method.combine(outs[0], outs[1], x=x, t=T, state=method.new_state(4))
    got = velocity(method, Models(routed, guide), x, conditioning(), idx)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", list(REGISTRY))
def test_text_velocities_are_batch_invariant_bit_for_bit(name, routed):
    """A sample's guided velocity is the same bits in a batch of 4 and alone: what makes text samples
    byte-identical across --batch-size and processes (docs/design.md, "Numerics")."""
    guide = randomised(ROUTED, seed=1)
    method = build_guidance(name, **({} if name == "unguided" else {"scale": 2.0}), **SPARSE.get(name, {}))
    x, _ = inputs(ROUTED, batch=4)
    idx = [0, 1, 2, 3]
    batched = velocity(method, Models(routed, guide), x, conditioning(), idx)
    alone = torch.cat([velocity(method, Models(routed, guide), x[i : i + 1], conditioning((i,)), [i]) for i in idx])
    assert torch.equal(batched, alone)


def test_a_prompt_set_is_encoded_once_per_model(routed, monkeypatch):
    calls = []
    original = SiT.encode_text
    monkeypatch.setattr(SiT, "encode_text", lambda self, p: calls.append(len(p)) or original(self, p))
    guide = randomised(ROUTED, seed=1)
    cond = conditioning()
    x, _ = inputs(ROUTED, batch=4)
    for step in range(3):
        with torch.no_grad():
            build_guidance("ag", scale=2.0).velocity(Models(routed, guide), x, T, step=step, indices=[0, 1, 2, 3],
                                                     seed=0, state=None, conditioning=cond)
    assert calls == [len(PROMPTS) + 1, len(PROMPTS) + 1]  # the set and "", once for main and once for the guide


def test_class_conditioning_is_the_labels_path():
    model = randomised(preset("Tiny-test"))
    labels = torch.tensor([0, 2, 1])
    x = torch.randn(3, 1, 8, 8)
    for name in ("cfg", "icg"):
        method = build_guidance(name, scale=2.0)
        a = method.velocity(Models(model), x, T, step=1, indices=[4, 5, 6], seed=0, state=None, labels=labels)
        b = method.velocity(Models(model), x, T, step=1, indices=[4, 5, 6], seed=0, state=None,
                            conditioning=ClassConditioning(labels))
        assert torch.equal(a, b)
    with pytest.raises(TypeError, match="exactly one of labels"):
        method.velocity(Models(model), x, T, step=1, indices=[4, 5, 6], seed=0, state=None)


# ----------------------------------------------------------------------------------------------------
# Checkpoints


def test_text_checkpoint_round_trip(tmp_path, routed):
    save_model(routed, tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    assert again.config == routed.config and again.config.text.vocabulary == VOCAB
    x, t = inputs(ROUTED)
    assert torch.equal(again(x, t, again.encode_text(PROMPTS[:3])), routed(x, t, routed.encode_text(PROMPTS[:3])))


def test_text_embedding_cat_and_select():
    e = TextEmbedding(torch.randn(3, 4, 2), torch.ones(3, 4, dtype=torch.bool), torch.randn(3, 2))
    both = TextEmbedding.cat([e, e.select(torch.tensor([2, 0]))])
    assert len(both) == 5 and torch.equal(both.tokens[3], e.tokens[2]) and torch.equal(both.pooled[4], e.pooled[0])


# ----------------------------------------------------------------------------------------------------
# open_clip: a randomly initialised tower from a local file (never faked)

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def clip_weights(tmp_path_factory) -> Path:
    """A random tiny open_clip model registered as 'sgbench-tiny-clip' and saved as a local file."""
    import json

    import open_clip

    folder = tmp_path_factory.mktemp("clip")
    (folder / "sgbench-tiny-clip.json").write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(folder / "sgbench-tiny-clip.json")
    torch.manual_seed(0)
    model = open_clip.create_model("sgbench-tiny-clip", pretrained=None)
    torch.save(model.state_dict(), folder / "tiny.pt")
    return folder / "tiny.pt"


def clip_text(weights: Path) -> TextConfig:
    return TextConfig("open_clip", width=16, heads=2, max_length=12, open_clip_model="sgbench-tiny-clip",
                      open_clip_weights=str(weights))


def test_open_clip_encoder_is_frozen_cached_and_shared(clip_weights):
    import open_clip

    config = replace(ROUTED, text=clip_text(clip_weights))
    model = SiT(config).eval()
    assert not any(k.startswith("text_encoder.base.frozen") for k in model.state_dict())
    trainable = {n for n, _ in model.named_parameters() if n.startswith("text_encoder")}
    assert "text_encoder.base.projection.weight" in trainable and len(trainable) == 2 + 2 * 12
    frozen = model.text_encoder.base.frozen
    # The tower is the file's: its pooled output equals open_clip's own CLIP built from that file.
    reference = open_clip.create_model("sgbench-tiny-clip", pretrained=str(clip_weights)).eval()
    ids = frozen.tokenizer(["a red bear"])
    with torch.no_grad():
        torch.testing.assert_close(frozen.tower(ids)[0], reference.encode_text(ids), rtol=1e-5, atol=1e-5)
    y = model.encode_text(["a red bear", "", "a red bear"])
    assert y.mask.sum(1).tolist() == [5, 2, 5]  # start, a, red, bear, end; the empty prompt: start, end
    assert set(frozen.cache) == {"a red bear", ""}
    assert copy.deepcopy(model).text_encoder.base.frozen is frozen  # the EMA shares the tower
    x, t = inputs(config)
    assert model(x, t, y).shape == x.shape


def test_open_clip_round_trip_and_missing_file(clip_weights, tmp_path):
    model = randomised(replace(ROUTED, text=clip_text(clip_weights)))
    save_model(model, tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    x, t = inputs(ROUTED)
    assert torch.equal(again(x, t, again.encode_text(PROMPTS[:3])), model(x, t, model.encode_text(PROMPTS[:3])))
    missing = clip_text(tmp_path / "nowhere.bin")
    with pytest.raises(SgbenchError, match=r"open_clip weights for sgbench-tiny-clip not found at .*nowhere.bin: download"):
        SiT(replace(ROUTED, text=missing))
