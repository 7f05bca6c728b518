"""Checkpoints: safetensors + config, exact reload, one clear error for every broken file."""

import json

import pytest
import torch
from safetensors.torch import save_file

from sgbench.errors import SgbenchError
from sgbench.models import Route, SiT, preset
from sgbench.models.checkpoint import CONFIG_KEY, load_model, save_model
from test_models import inputs, randomised


def test_reload_gives_identical_outputs(tmp_path):
    model = randomised(SiT(preset("Tiny-test", routes=(Route(1, 2, 0.5),))))
    save_model(model, tmp_path / "m.safetensors")
    again = load_model(tmp_path / "m.safetensors")
    x, t, y = inputs()
    assert again.config == model.config
    assert torch.equal(model(x, t, y), again(x, t, y))


def test_half_precision_shipping_reloads_as_float32(tmp_path):
    model = randomised(SiT(preset("Tiny-test")))
    save_model(model, tmp_path / "m.safetensors", dtype=torch.float16)
    again = load_model(tmp_path / "m.safetensors")
    assert again.blocks[0].attn.qkv.weight.dtype == torch.float32
    torch.testing.assert_close(again.blocks[0].attn.qkv.weight, model.blocks[0].attn.qkv.weight, atol=1e-3, rtol=1e-3)


def test_truncated_file_is_one_clear_error(tmp_path):
    save_model(SiT(preset("Tiny-test")), tmp_path / "m.safetensors")
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "m.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SgbenchError, match="truncated or corrupt"):
        load_model(tmp_path / "m.safetensors")


def test_missing_file(tmp_path):
    with pytest.raises(SgbenchError, match="Checkpoint not found"):
        load_model(tmp_path / "nope.safetensors")


def test_config_weights_mismatch(tmp_path):
    model = SiT(preset("Tiny-test"))
    other = preset("Tiny-test", hidden_size=64).to_dict()
    save_file(model.state_dict(), str(tmp_path / "m.safetensors"), metadata={CONFIG_KEY: json.dumps(other)})
    with pytest.raises(SgbenchError, match="weights do not match its config.*shape of"):
        load_model(tmp_path / "m.safetensors")


def test_file_without_config(tmp_path):
    save_file({"w": torch.zeros(2)}, str(tmp_path / "m.safetensors"))
    with pytest.raises(SgbenchError, match="no sgbench model config"):
        load_model(tmp_path / "m.safetensors")
