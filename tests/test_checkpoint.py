"""Checkpoints: safetensors + config, exact reload, one clear error for every broken file."""

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from sgbench.utils.errors import SgbenchError
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


# ----------------------------------------------------------------------------------------------------
# `sgbench export model`: one line for a destination it cannot write, and never a temporary file left


def export(source, dest):
    from typer.testing import CliRunner

    from sgbench.cli import app

    return CliRunner().invoke(app, ["export", "model", str(source), str(dest)])


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


def test_export_to_a_directory_is_refused_up_front_and_leaves_no_temp_file(tmp_path):
    from test_cli import one_line_error

    save_model(SiT(preset("Tiny-test")), tmp_path / "m.safetensors")
    (tmp_path / "shipped").mkdir()
    one_line_error(export(tmp_path / "m.safetensors", tmp_path / "shipped"), "shipped is a directory; give a file path ending in .safetensors")
    assert leftovers(tmp_path) == [] and list((tmp_path / "shipped").iterdir()) == []


def test_a_failed_write_is_one_line_naming_the_path_and_leaves_no_temp_file(tmp_path, monkeypatch):
    from test_cli import one_line_error

    import sgbench.models.checkpoint as checkpoint

    save_model(SiT(preset("Tiny-test")), tmp_path / "m.safetensors")

    def half_written_then_refused(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise PermissionError(13, "Permission denied", filename)

    monkeypatch.setattr(checkpoint, "save_file", half_written_then_refused)
    one_line_error(export(tmp_path / "m.safetensors", tmp_path / "out.safetensors"), f"Cannot write {tmp_path / 'out.safetensors'}: Permission denied")
    assert leftovers(tmp_path) == [] and not (tmp_path / "out.safetensors").exists()


def test_an_unwritable_destination_is_one_line_with_the_reason(tmp_path):
    from test_cli import one_line_error

    save_model(SiT(preset("Tiny-test")), tmp_path / "m.safetensors")
    one_line_error(export(tmp_path / "m.safetensors", "/proc/sgbench-cannot-write.safetensors"),
                   "Cannot write /proc/sgbench-cannot-write.safetensors: No such file or directory")
    one_line_error(export(tmp_path / "m.safetensors", tmp_path / "m.safetensors" / "x.safetensors"), "Cannot write", "m.safetensors is a file, not a folder")
    assert leftovers(tmp_path) == []


def test_any_failure_while_writing_leaves_no_temp_file(tmp_path, monkeypatch):
    import sgbench.models.checkpoint as checkpoint

    def half_written_then_broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise RuntimeError("interrupted")

    monkeypatch.setattr(checkpoint, "save_file", half_written_then_broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        save_model(SiT(preset("Tiny-test")), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_export_into_a_read_only_folder_is_one_line(tmp_path):
    from test_cli import one_line_error

    save_model(SiT(preset("Tiny-test")), tmp_path / "m.safetensors")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    try:
        one_line_error(export(tmp_path / "m.safetensors", tmp_path / "ro" / "x.safetensors"), "Cannot write", "ro/x.safetensors")
        assert list((tmp_path / "ro").iterdir()) == []
    finally:
        (tmp_path / "ro").chmod(0o755)
