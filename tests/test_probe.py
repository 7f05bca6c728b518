"""The attribute-swap probe: each alteration changes exactly one attribute, a model that ignores its text
scores 0.5 on every attribute, and the probe is deterministic."""

import random

import pytest
import torch

from sgbench.data.scenes import DEFAULT_LAYOUT, DEFAULT_OBJECTS, DEFAULT_SPRITE, caption_vocabulary, describe
from sgbench.evaluation.probe import ATTRIBUTES, altered, attribute_probe, caption_groups, probe_pairs
from sgbench.models.config import Route, preset
from sgbench.models.sit import SiT
from sgbench.text.encoder import TextConfig
from sgbench.utils.errors import SgbenchError

CLASSES = ("bear", "cat", "cow", "dog", "zebra")
TEXT = TextConfig("embedded", width=16, heads=2, max_length=16, vocabulary=tuple(caption_vocabulary()))
TINY = preset("Tiny-test", input_size=48, patch_size=12, in_channels=3, num_classes=0, routes=(Route(1, 2, 0.5),),
              text=TEXT, name="text-tiny")


def test_caption_groups_read_the_caption_order_back_from_genevals_metadata():
    for groups, relation in ([[("cow", 1, "red")], None], [[("cow", 1, None), ("dog", 1, "blue")], "left of"],
                             [[("cat", 3, None), ("dog", 1, None)], None]):
        assert caption_groups(describe(groups, relation)[1]) == (groups, relation)


@pytest.mark.parametrize("attribute,groups,relation,expected", [
    ("class", [("cow", 1, "red")], None, lambda g, r: g[0][0] != "cow" and g[0][1:] == (1, "red")),
    ("second_class", [("cow", 1, None), ("dog", 1, None)], None, lambda g, r: g[0] == ("cow", 1, None) and g[1][0] not in ("cow", "dog")),
    ("colour", [("cow", 1, "red")], None, lambda g, r: g[0][:2] == ("cow", 1) and g[0][2] not in (None, "red")),
    ("one_vs_two", [("cow", 1, None)], None, lambda g, r: g == [("cow", 2, None)]),
    ("count", [("cow", 3, None)], None, lambda g, r: g[0][0] == "cow" and g[0][1] in (2, 4)),
    ("colour_binding", [("cow", 1, "red"), ("dog", 1, "blue")], None, lambda g, r: g == [("cow", 1, "blue"), ("dog", 1, "red")]),
    ("relation", [("cow", 1, None), ("dog", 1, None)], "above", lambda g, r: r == "below" and g == [("cow", 1, None), ("dog", 1, None)]),
])
def test_each_alteration_changes_exactly_its_attribute(attribute, groups, relation, expected):
    g, r = altered(groups, relation, attribute, random.Random(0), CLASSES)
    assert expected(g, r), (g, r)


def test_attributes_a_scene_does_not_have_are_skipped():
    assert altered([("cow", 1, None)], None, "colour", random.Random(0), CLASSES) is None
    assert altered([("cow", 1, None)], None, "relation", random.Random(0), CLASSES) is None
    assert altered([("cow", 3, None)], None, "one_vs_two", random.Random(0), CLASSES) is None


@pytest.mark.parametrize("style", [dict(sprite=DEFAULT_SPRITE), dict(sprite=16, objects="silhouettes", layout="free")])
def test_probe_pairs_differ_by_one_attribute_and_keep_the_phrasing(style):
    images, true, false = probe_pairs("relation", 5, canvas=48, classes=CLASSES + ("horse", "sheep"), **style)
    assert images.shape == (5, 48, 48, 3) and len(true) == len(false) == 5
    for t, f in zip(true, false):
        assert t != f and t.startswith("a photo of") == f.startswith("a photo of")


def test_a_model_that_ignores_its_text_scores_one_half_and_the_probe_is_deterministic():
    torch.manual_seed(0)
    model = SiT(TINY)  # text enters at zero (adaLN-Zero style init): every caption gives the same output
    blind = attribute_probe(model, scenes=8, batch_size=4)
    assert blind == {a: 0.5 for a in ATTRIBUTES}
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    first, again = attribute_probe(model, scenes=8), attribute_probe(model, scenes=8)
    assert first == again and all(0.0 <= v <= 1.0 for v in first.values())


def test_the_probe_at_a_fixed_time_scores_every_scene_at_that_time():
    torch.manual_seed(0)
    model = SiT(TINY)
    assert attribute_probe(model, scenes=4, t=0.0) == {a: 0.5 for a in ATTRIBUTES}  # text enters at zero
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.1)
    seen = []
    forward = model.forward
    model.forward = lambda x, t, y: seen.append(t.clone()) or forward(x, t, y)
    attribute_probe(model, scenes=3, attributes=("class",), t=0.05)
    assert all(torch.equal(t, torch.full_like(t, 0.05)) for t in seen) and len(seen) == 2
    with pytest.raises(SgbenchError, match=r"Expected a probe time t in \[0, 1\) \(0 = pure noise\) but got 1.0"):
        attribute_probe(model, scenes=2, t=1.0)


def test_a_class_model_is_refused():
    with pytest.raises(SgbenchError, match="needs a text model"):
        attribute_probe(SiT(preset("Tiny-test")), scenes=2)


def test_the_probe_command_prints_every_attribute_and_refuses_bad_input(tmp_path):
    import json

    from typer.testing import CliRunner

    from sgbench.cli import app
    from sgbench.models.checkpoint import save_model

    torch.manual_seed(0)
    save_model(SiT(TINY), tmp_path / "t.safetensors")
    r = CliRunner().invoke(app, ["eval", "probe", "-c", str(tmp_path / "t.safetensors"), "--scenes", "4", "-f", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {a: 0.5 for a in ATTRIBUTES}
    bad = CliRunner().invoke(app, ["eval", "probe", "-c", str(tmp_path / "t.safetensors"), "--scenes", "0"])
    assert bad.exit_code == 2 and "Expected --scenes >= 1 but got 0" in bad.output
    by_t = CliRunner().invoke(app, ["eval", "probe", "-c", str(tmp_path / "t.safetensors"), "--scenes", "2", "--t", "0,0.3", "-f", "json"])
    assert by_t.exit_code == 0, by_t.output
    assert json.loads(by_t.stdout) == {"0.0": {a: 0.5 for a in ATTRIBUTES}, "0.3": {a: 0.5 for a in ATTRIBUTES}}
    shown = CliRunner().invoke(app, ["eval", "probe", "-c", str(tmp_path / "t.safetensors"), "--scenes", "2", "--t", "0.05"])
    assert shown.exit_code == 0 and "t=0.05" in shown.stdout and "relation" in shown.stdout
    for value, message in (("0,x", "Expected --t as comma-separated numbers"), ("0.5,1", "Expected --t values in [0, 1)")):
        bad = CliRunner().invoke(app, ["eval", "probe", "-c", str(tmp_path / "t.safetensors"), "--t", value])
        assert bad.exit_code == 2 and message in bad.output, bad.output


def test_the_probe_draws_the_miniatures_default_scenes_unless_told(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from sgbench.cli import app
    from sgbench.models.checkpoint import save_model
    from test_cli import record

    save_model(SiT(TINY), tmp_path / "t.safetensors")
    calls = record(monkeypatch, "sgbench.evaluation.probe.attribute_probe", {a: 0.5 for a in ATTRIBUTES})
    probe = ["eval", "probe", "-c", str(tmp_path / "t.safetensors"), "-f", "json"]
    assert CliRunner().invoke(app, probe).exit_code == 0
    assert CliRunner().invoke(app, [*probe, "--objects", "silhouettes", "--layout", "free", "--sprite", "16"]).exit_code == 0
    styles = [{k: kwargs[k] for k in ("objects", "layout", "sprite")} for _, kwargs in calls]
    assert styles == [dict(objects=DEFAULT_OBJECTS, layout=DEFAULT_LAYOUT, sprite=DEFAULT_SPRITE),
                      dict(objects="silhouettes", layout="free", sprite=16)]
