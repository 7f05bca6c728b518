"""Importers: our model on imported weights reproduces the ORIGINAL code's outputs.

Each fixture (tests/fixtures/importers/<kind>/, made once by the original repository's own model code,
see the README beside it) holds a tiny random state dict, fixed inputs and the original outputs. The
state dict is saved the way the original training code saves it (a torch pickle), imported, and our
velocity compared with the original output after the documented convention change.
"""

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from sgbench.utils.errors import SgbenchError
from sgbench.models import Route
from sgbench.models.checkpoint import load_extra, load_model
from sgbench.models.importers import import_checkpoint
from sgbench.models.importers.common import reverse_time

FIXTURES = Path(__file__).parent / "fixtures" / "importers"
ATOL = 1e-5
TREAD_ROUTES = (Route(1, 2, 0.5), Route(3, 4, 0.25))  # the fixture's hydra routes (end inclusive)


def fixture(path: Path) -> tuple[dict, dict, dict]:
    """(original state dict, inputs and outputs, metadata)."""
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    state = {k.removeprefix("state."): v for k, v in tensors.items() if k.startswith("state.")}
    data = {k: v for k, v in tensors.items() if not k.startswith("state.")}
    return state, data, meta


def imported(kind: str, path: Path, tmp_path: Path, entry: str, **options):
    """Save the fixture's state dict as the original code's checkpoint, import it, reload our file."""
    state, data, _ = fixture(path)
    src = tmp_path / "original.pt"
    torch.save({entry: state, "step": 50_000}, src)
    import_checkpoint(kind, src, tmp_path / "ours.safetensors", **options)
    return load_model(tmp_path / "ours.safetensors"), data


def edm_velocity_of(D: torch.Tensor, x_edm: torch.Tensor, sigma: torch.Tensor):
    """The original EDM denoiser output D(x_edm; sigma) as our (x_t, t, v): t = 1 / (1 + sigma), x_t = t x_edm."""
    t = 1 / (1 + sigma)
    x_t = t.reshape(-1, 1, 1, 1) * x_edm
    return x_t, t, (D - x_t) / (1 - t).reshape(-1, 1, 1, 1)


@torch.no_grad()
def test_tread_rf_matches_the_official_code_dense_and_routed(tmp_path):
    model, d = imported("tread", FIXTURES / "tread" / "rf.safetensors", tmp_path, "ema_state_dict", routes=TREAD_ROUTES, num_heads=2,
                        preconditioning="rf")  # a bare network: its keys cannot tell rf from edm
    assert model.config.routes == TREAD_ROUTES and model.config.edm is None and model.config.time_scale == 1.0
    t = 1 - d["t"]  # rf.py: t = 1 is noise
    torch.testing.assert_close(model(d["x"], t, d["y"]), -d["out_dense"], atol=ATOL, rtol=0)  # v_ours = -v_theirs
    routed = model(d["x"], t, d["y"], keep=(d["keep.0"], d["keep.1"]))
    torch.testing.assert_close(routed, -d["out_routed"], atol=ATOL, rtol=0)
    assert not torch.allclose(routed, -d["out_dense"], atol=1e-3)  # the selection mattered


@torch.no_grad()
def test_tread_edm_matches_the_official_code_dense_and_routed(tmp_path):
    model, d = imported("tread", FIXTURES / "tread" / "edm.safetensors", tmp_path, "ema_state_dict", routes=TREAD_ROUTES, num_heads=2)
    assert model.config.edm is not None and model.config.edm.sigma_data == 0.5
    x_t, t, v = edm_velocity_of(d["out_dense"], d["x"], d["sigma"])
    torch.testing.assert_close(model(x_t, t, d["y"]), v, atol=ATOL, rtol=0)
    _, _, v_routed = edm_velocity_of(d["out_routed"], d["x"], d["sigma"])
    torch.testing.assert_close(model(x_t, t, d["y"], keep=(d["keep.0"], d["keep.1"])), v_routed, atol=ATOL, rtol=0)


@torch.no_grad()
def test_sit_matches_the_official_code(tmp_path):
    model, d = imported("sit", FIXTURES / "sit" / "sit.safetensors", tmp_path, "ema", num_heads=2)
    assert not model.config.learn_sigma and model.config.out_channels == 4  # sigma channels dropped
    torch.testing.assert_close(model(d["x"], d["t"], d["y"]), d["out_dense"], atol=ATOL, rtol=0)


@torch.no_grad()
def test_maskdit_matches_the_official_code_dense_and_masked(tmp_path):
    model, d = imported("maskdit", FIXTURES / "maskdit" / "maskdit.safetensors", tmp_path, "ema", num_heads=2, decoder_heads=4)
    assert model.config.masking.embed_adaln and model.config.edm is not None
    x_t, t, v = edm_velocity_of(d["out_dense"], d["x"], d["sigma"])
    torch.testing.assert_close(model(x_t, t, d["y"]), v, atol=ATOL, rtol=0)  # y = 3: MaskDiT's zero one-hot
    _, _, v_masked = edm_velocity_of(d["out_masked"], d["x"], d["sigma"])
    torch.testing.assert_close(model(x_t, t, d["y"], keep=d["keep"]), v_masked, atol=ATOL, rtol=0)


@torch.no_grad()
def test_edm_velocity_is_finite_at_both_ends_of_time(tmp_path):
    model, d = imported("maskdit", FIXTURES / "maskdit" / "maskdit.safetensors", tmp_path, "ema", num_heads=2, decoder_heads=4)
    v = model(d["x"], torch.tensor([0.0, 1e-6, 1 - 1e-6, 1.0]), d["y"])
    assert torch.isfinite(v).all()


def test_time_reversal_fold_is_exact_on_the_embedding():
    torch.manual_seed(0)
    state = {"t_embedder.mlp.0.weight": torch.randn(8, 256, dtype=torch.float64).float()}
    w = state["t_embedder.mlp.0.weight"].clone()
    reverse_time(state)
    half = 128
    freqs = torch.exp(-torch.log(torch.tensor(10000.0)) * torch.arange(half, dtype=torch.float32) / half)
    emb = lambda t: torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], dim=1)  # noqa: E731
    t = torch.rand(5)
    torch.testing.assert_close(emb(1 - t) @ w.T, emb(t) @ state["t_embedder.mlp.0.weight"].T, atol=2e-5, rtol=0)


def test_import_records_its_source(tmp_path):
    imported("sit", FIXTURES / "sit" / "sit.safetensors", tmp_path, "ema", num_heads=2)
    extra = load_extra(tmp_path / "ours.safetensors")
    assert extra["imported_from"] == "sit" and extra["source_entry"] == "ema" and len(extra["source_sha256"]) == 64


# ----------------------------------------------------------------------------------------------------
# Every refusal is one clear line


def test_dit_is_refused_with_the_reason(tmp_path):
    state, _, _ = fixture(FIXTURES / "sit" / "sit.safetensors")
    torch.save(state, tmp_path / "DiT-XL-2-256x256.pt")
    with pytest.raises(SgbenchError, match="predict noise on a discrete 1000-step VP schedule.*kind 'sit'"):
        import_checkpoint("dit", tmp_path / "DiT-XL-2-256x256.pt", tmp_path / "o.safetensors")


def test_pickles_with_code_need_trust(tmp_path):
    state, _, _ = fixture(FIXTURES / "sit" / "sit.safetensors")
    torch.save({"ema": state, "args": Path("x")}, tmp_path / "ckpt.pt")  # a non-allowlisted object
    with pytest.raises(SgbenchError, match="--trust-pickle"):
        import_checkpoint("sit", tmp_path / "ckpt.pt", tmp_path / "o.safetensors", num_heads=2)
    import_checkpoint("sit", tmp_path / "ckpt.pt", tmp_path / "o.safetensors", num_heads=2, trust_pickle=True)


def test_training_args_namespace_is_allowed_without_trust(tmp_path):
    import argparse

    state, _, _ = fixture(FIXTURES / "sit" / "sit.safetensors")
    torch.save({"ema": state, "args": argparse.Namespace(model="SiT-XL/2")}, tmp_path / "ckpt.pt")
    import_checkpoint("sit", tmp_path / "ckpt.pt", tmp_path / "o.safetensors", num_heads=2)


@pytest.mark.parametrize(
    "kind,options,message",
    [
        ("stylegan", {}, "Expected an import kind in tread, sit, maskdit, dit"),
        ("sit", {"routes": (Route(1, 2),)}, "Routes are given for TREAD checkpoints only"),
        ("sit", {}, "Cannot infer the number of attention heads of a width-16 model; pass --num-heads"),
    ],
)
def test_bad_import_requests(tmp_path, kind, options, message):
    state, _, _ = fixture(FIXTURES / "sit" / "sit.safetensors")
    torch.save(state, tmp_path / "s.pt")
    with pytest.raises(SgbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        import_checkpoint(kind, tmp_path / "s.pt", tmp_path / "o.safetensors", **options)


def test_a_learned_position_embedding_is_refused(tmp_path):
    state, _, _ = fixture(FIXTURES / "sit" / "sit.safetensors")
    state["pos_embed"] = state["pos_embed"] + 0.1
    torch.save(state, tmp_path / "s.pt")
    with pytest.raises(SgbenchError, match="not DiT's fixed 2D sin-cos embedding"):
        import_checkpoint("sit", tmp_path / "s.pt", tmp_path / "o.safetensors", num_heads=2)


def test_fixture_readmes_name_the_commit():
    for kind in ("tread", "sit", "maskdit"):
        text = (FIXTURES / kind / "README.md").read_text()
        assert "commit" in text and "python" in text, kind
        meta = fixture(next((FIXTURES / kind).glob("*.safetensors")))[2]
        assert "config" in meta and json.loads(meta["config"])


def test_shape_inference_recognises_sit_xl2():
    """SiT-XL-2-256.pt's shapes give our SiT-XL/2 preset (heads from DiT's table by width)."""
    from dataclasses import replace

    from sgbench.models import preset
    from sgbench.models.importers.common import dit_shape, size_name

    state = {
        "x_embedder.proj.weight": torch.zeros(1152, 4, 2, 2), "pos_embed": torch.zeros(1, 256, 1152),
        "blocks.0.mlp.fc1.weight": torch.zeros(4608, 1152), "final_layer.linear.weight": torch.zeros(32, 1152),
        **{f"blocks.{i}.attn.qkv.weight": torch.zeros(()) for i in range(28)},
    }
    shape = dit_shape(state, None)
    assert size_name(shape) == "XL/2"
    assert replace(preset("SiT-XL/2"), **shape, name="x") == replace(preset("SiT-XL/2"), name="x")  # learn_sigma too


# ----------------------------------------------------------------------------------------------------
# The command


def fake_vae_dir(path: Path) -> Path:
    """What sgbench.models.vae.vae_identity reads: config.json and a weights file (no diffusers needed)."""
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL", "latent_channels": 4, "scaling_factor": 0.18215}))
    (path / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
    return path


def test_cli_import_records_the_vae_and_help_says_checkpoints_are_code(tmp_path):
    from typer.testing import CliRunner

    from sgbench.cli import app

    state, _, _ = fixture(FIXTURES / "sit" / "sit.safetensors")
    torch.save({"ema": state}, tmp_path / "SiT.pt")
    vae = fake_vae_dir(tmp_path / "vae")
    result = CliRunner().invoke(app, ["import", "sit", str(tmp_path / "SiT.pt"), str(tmp_path / "ours.safetensors"),
                                      "--num-heads", "2", "--vae", str(vae)])
    assert result.exit_code == 0, result.output
    assert f"decoded by {vae}" in result.output
    recorded = load_extra(tmp_path / "ours.safetensors")["vae"]
    assert recorded["source"] == str(vae) and recorded["scaling_factor"] == 0.18215 and len(recorded["weights_sha256"]) == 64
    missing = CliRunner().invoke(app, ["import", "sit", str(tmp_path / "SiT.pt"), str(tmp_path / "o.safetensors"),
                                       "--num-heads", "2", "--vae", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "No VAE at" in missing.output and not (tmp_path / "o.safetensors").exists()
    text = " ".join(CliRunner().invoke(app, ["import", "--help"], terminal_width=200).output.split())
    assert "Checkpoints are code" in text and "untrusted source can run arbitrary code" in text and "--trust-pickle" in text


# ----------------------------------------------------------------------------------------------------
# What a user gets wrong: one line (exit 2) naming what fits, before anything is written


def cli_import(*args: str):
    from typer.testing import CliRunner

    from sgbench.cli import app

    return CliRunner().invoke(app, ["import", *map(str, args)])


def no_file_written(folder: Path) -> bool:
    return not (folder / "o.safetensors").exists() and not [p for p in folder.iterdir() if ".tmp" in p.name]


def sit_state() -> dict:
    return fixture(FIXTURES / "sit" / "sit.safetensors")[0]


def test_an_import_into_a_directory_is_refused_before_reading(tmp_path):
    from test_cli import one_line_error

    (tmp_path / "out").mkdir()
    one_line_error(cli_import("sit", tmp_path / "never-read.pt", tmp_path / "out", "--num-heads", "2"),
                   "out is a directory; give a file path ending in .safetensors")


@pytest.mark.parametrize("trust", [False, True])
def test_a_text_file_is_not_a_checkpoint_and_gets_no_trust_pickle_hint(tmp_path, trust):
    from test_cli import one_line_error

    (tmp_path / "config.yaml").write_text("model: SiT-XL/2\nnum_classes: 1000\n")
    result = cli_import("sit", tmp_path / "config.yaml", tmp_path / "o.safetensors", "--num-heads", "2", *(["--trust-pickle"] if trust else []))
    one_line_error(result, "config.yaml is not a PyTorch checkpoint (neither torch.save's zip archive nor a pickle")
    assert "--trust-pickle" not in result.output and no_file_written(tmp_path)


def test_a_truncated_safetensors_file_is_one_line(tmp_path):
    from test_cli import one_line_error
    from safetensors.torch import save_file

    save_file(fixture(FIXTURES / "tread" / "rf.safetensors")[0], str(tmp_path / "t.safetensors"))
    data = (tmp_path / "t.safetensors").read_bytes()
    (tmp_path / "t.safetensors").write_bytes(data[: len(data) // 2])
    one_line_error(cli_import("tread", tmp_path / "t.safetensors", tmp_path / "o.safetensors", "--dense", "--preconditioning", "rf"),
                   "is not a readable safetensors file (truncated or corrupt?)")
    assert no_file_written(tmp_path)


@pytest.mark.parametrize("trust", [False, True])
def test_a_truncated_pickle_is_corrupt_and_gets_no_trust_pickle_hint(tmp_path, trust):
    from test_cli import one_line_error

    torch.save({"ema": sit_state()}, tmp_path / "s.pt")
    data = (tmp_path / "s.pt").read_bytes()
    (tmp_path / "s.pt").write_bytes(data[: len(data) // 2])
    result = cli_import("sit", tmp_path / "s.pt", tmp_path / "o.safetensors", "--num-heads", "2", *(["--trust-pickle"] if trust else []))
    one_line_error(result, "s.pt is not a readable torch checkpoint (truncated or corrupt?)")
    assert "--trust-pickle" not in result.output


def test_the_trust_pickle_hint_names_the_refused_object(tmp_path):
    from test_cli import one_line_error

    torch.save({"ema": sit_state(), "args": Path("x")}, tmp_path / "ckpt.pt")
    one_line_error(cli_import("sit", tmp_path / "ckpt.pt", tmp_path / "o.safetensors", "--num-heads", "2"),
                   "holds objects other than tensors (pathlib.", "rerun with --trust-pickle")


def test_a_sit_training_checkpoint_is_refused_by_the_tread_importer(tmp_path):
    import argparse

    from test_cli import one_line_error

    state = sit_state()
    torch.save({"model": state, "ema": state, "opt": {}, "args": argparse.Namespace(num_classes=3)}, tmp_path / "0050000.pt")
    one_line_error(cli_import("tread", tmp_path / "0050000.pt", tmp_path / "o.safetensors", "--dense", "--preconditioning", "rf", "--num-heads", "2"),
                   "looks like a SiT checkpoint (entry 'ema'), not a TREAD one; import it with `sgbench import sit`")
    assert no_file_written(tmp_path)


def test_a_tread_training_checkpoint_is_refused_by_the_sit_importer(tmp_path):
    from test_cli import one_line_error

    state = fixture(FIXTURES / "tread" / "rf.safetensors")[0]
    torch.save({"model_state_dict": state, "ema_state_dict": state, "optimizer_state_dict": {}, "step": 50_000}, tmp_path / "latest.pt")
    one_line_error(cli_import("sit", tmp_path / "latest.pt", tmp_path / "o.safetensors", "--num-heads", "2"),
                   "looks like a TREAD checkpoint (entry 'ema_state_dict'), not a SiT one; import it with `sgbench import tread`")
    assert no_file_written(tmp_path)


def test_a_bare_tread_network_needs_its_preconditioning(tmp_path):
    from test_cli import one_line_error

    torch.save(fixture(FIXTURES / "tread" / "rf.safetensors")[0], tmp_path / "net.pt")
    one_line_error(cli_import("tread", tmp_path / "net.pt", tmp_path / "o.safetensors", "--dense", "--num-heads", "2"),
                   "give --preconditioning rf (trained with rf.py) or --preconditioning edm")
    one_line_error(cli_import("tread", tmp_path / "net.pt", tmp_path / "o.safetensors", "--dense", "--preconditioning", "ddpm"),
                   "Expected --preconditioning rf or edm but got 'ddpm'")
    assert no_file_written(tmp_path)


@torch.no_grad()
def test_a_bare_edm_tread_network_imports_as_edm_when_told(tmp_path):
    state, d, _ = fixture(FIXTURES / "tread" / "edm.safetensors")
    torch.save({k.removeprefix("model."): v for k, v in state.items()}, tmp_path / "net.pt")  # saved without EDMPrecond
    import_checkpoint("tread", tmp_path / "net.pt", tmp_path / "o.safetensors", routes=TREAD_ROUTES, num_heads=2, preconditioning="edm")
    model = load_model(tmp_path / "o.safetensors")
    assert model.config.edm is not None and model.config.name.startswith("tread-edm")
    x_t, t, v = edm_velocity_of(d["out_dense"], d["x"], d["sigma"])
    torch.testing.assert_close(model(x_t, t, d["y"]), v, atol=ATOL, rtol=0)


def test_a_preconditioning_that_contradicts_the_edm_wrapper_is_refused(tmp_path):
    from test_cli import one_line_error

    torch.save({"ema_state_dict": fixture(FIXTURES / "tread" / "edm.safetensors")[0]}, tmp_path / "latest.pt")
    one_line_error(cli_import("tread", tmp_path / "latest.pt", tmp_path / "o.safetensors", "--route", "1:2", "--preconditioning", "rf",
                              "--num-heads", "2"), "--preconditioning rf contradicts the checkpoint", "EDMPrecond")
    assert no_file_written(tmp_path)
    result = cli_import("tread", tmp_path / "latest.pt", tmp_path / "o.safetensors", "--route", "1:2", "--preconditioning", "edm", "--num-heads", "2")
    assert result.exit_code == 0, result.output
    assert load_model(tmp_path / "o.safetensors").config.edm is not None


@torch.no_grad()
def test_a_sit_trained_without_class_dropout_keeps_every_class(tmp_path):
    import argparse

    state, d, _ = fixture(FIXTURES / "sit" / "sit.safetensors")
    state["y_embedder.embedding_table.weight"] = state["y_embedder.embedding_table.weight"][:3]  # 3 classes, no null row
    torch.save({"ema": state, "args": argparse.Namespace(num_classes=3)}, tmp_path / "ckpt.pt")
    result = cli_import("sit", tmp_path / "ckpt.pt", tmp_path / "o.safetensors", "--num-heads", "2")
    assert result.exit_code == 0 and "null class added as zeros" in result.output, result.output  # the user is told
    model = load_model(tmp_path / "o.safetensors")
    assert model.config.num_classes == 3 and not model.y_embedder.weight[3].any()  # a zero null row was added
    assert "no null class" in load_extra(tmp_path / "o.safetensors")["null_class"]
    torch.testing.assert_close(model(d["x"][:3], d["t"][:3], d["y"][:3]), d["out_dense"][:3], atol=ATOL, rtol=0)


def test_a_sit_with_the_null_row_and_recorded_classes_is_unchanged(tmp_path):
    import argparse

    torch.save({"ema": sit_state(), "args": argparse.Namespace(num_classes=3)}, tmp_path / "ckpt.pt")
    import_checkpoint("sit", tmp_path / "ckpt.pt", tmp_path / "o.safetensors", num_heads=2)
    assert load_model(tmp_path / "o.safetensors").config.num_classes == 3
    assert "null_class" not in load_extra(tmp_path / "o.safetensors")


def test_a_class_table_that_disagrees_with_the_recorded_classes_is_refused(tmp_path):
    import argparse

    torch.save({"ema": sit_state(), "args": argparse.Namespace(num_classes=10)}, tmp_path / "ckpt.pt")
    with pytest.raises(SgbenchError, match=r"class table has 4 rows but its args.num_classes is 10 \(expected 11 .* or 10 without\)"):
        import_checkpoint("sit", tmp_path / "ckpt.pt", tmp_path / "o.safetensors", num_heads=2)
    assert no_file_written(tmp_path)


@pytest.mark.parametrize("kind,path,options", [
    ("sit", FIXTURES / "sit" / "sit.safetensors", {}),
    ("tread", FIXTURES / "tread" / "rf.safetensors", {"dense": True, "preconditioning": "rf"}),
    ("maskdit", FIXTURES / "maskdit" / "maskdit.safetensors", {"decoder_heads": 4}),
])
def test_unknown_weights_are_refused_not_dropped(tmp_path, kind, path, options):
    state = fixture(path)[0]
    prefix = "model." if kind == "maskdit" else ""
    for i in range(7):
        state[f"{prefix}extra_head{i}.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "s.pt")
    with pytest.raises(SgbenchError, match=r"weights that .*'s model does not have: extra_head0.weight, .*extra_head4.weight and 2 more"):
        import_checkpoint(kind, tmp_path / "s.pt", tmp_path / "o.safetensors", num_heads=2, **options)
    assert no_file_written(tmp_path)


def test_tread_needs_routes_or_an_explicit_dense(tmp_path):
    from test_cli import one_line_error

    torch.save(fixture(FIXTURES / "tread" / "rf.safetensors")[0], tmp_path / "net.pt")
    args = ("tread", tmp_path / "net.pt", tmp_path / "o.safetensors", "--preconditioning", "rf", "--num-heads", "2")
    one_line_error(cli_import(*args), "TREAD checkpoints do not record their routes: give --route START:END[:RATE]", "or --dense")
    one_line_error(cli_import(*args, "--dense", "--route", "1:2"), "either --route", "or --dense", "not both")
    assert no_file_written(tmp_path)
    dense = cli_import(*args, "--dense")
    assert dense.exit_code == 0 and "dense" in dense.output, dense.output
    assert load_model(tmp_path / "o.safetensors").config.routes == ()


def test_dense_and_preconditioning_are_for_tread_only(tmp_path):
    from test_cli import one_line_error

    torch.save(sit_state(), tmp_path / "s.pt")
    one_line_error(cli_import("sit", tmp_path / "s.pt", tmp_path / "o.safetensors", "--dense"), "for TREAD checkpoints only")


def test_import_help_documents_dense_and_preconditioning():
    from typer.testing import CliRunner

    from sgbench.cli import app

    text = " ".join(CliRunner().invoke(app, ["import", "--help"]).output.replace("│", " ").split())  # rich wraps in boxes
    assert "--dense" in text and "--preconditioning" in text and "rf (rf.py) or edm (edm.py)" in text
    assert "trained without routing" in text and "give --route (or --dense), and --preconditioning unless" in text
