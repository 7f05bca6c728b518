"""Latent models: samples are the VAE's decoding of the model's output, the VAE belongs to the run's
identity, bf16 autocast, and the ImageNet path (import-adm, sample --vae, eval fid --extractor inception,
compare --reference paper) end to end through the CLI on a tiny model, a tiny VAE and random Inception."""

import json
import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sgbench.cli import app
from sgbench.utils.errors import SgbenchError
from sgbench.models.checkpoint import load_model, save_model
from sgbench.runs.rundir import RunDir
from sgbench.sampling import DECODE_BATCH, SampleConfig, sample_run

pytest.importorskip("diffusers")
from sgbench.workflows.memory import tiny_latent_model, tiny_vae  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def latent(tmp_path_factory):
    """(model checkpoint, VAE directory): 4x4x4 latents that decode to 32x32 RGB."""
    folder = tmp_path_factory.mktemp("latent")
    return tiny_latent_model(folder / "latent.safetensors"), tiny_vae(folder / "vae")


def run(model, vae, out, **kw):
    base = dict(checkpoint=str(model), out=str(out), vae=str(vae) if vae else None, num=10, batch_size=4, steps=3)
    base.update(kw)
    return sample_run(SampleConfig(**base), progress=False)


def images(run_dir):
    with np.load(run_dir / "samples.npz") as f:
        return f["arr_0"]


def test_samples_are_the_vaes_decoding_of_the_models_output(latent, tmp_path):
    from sgbench.core.guidance import Models, build_guidance
    from sgbench.sampling import class_conditioning, generate
    from sgbench.models.vae import load_vae, vae_identity

    model, vae = latent
    out = run(model, vae, tmp_path / "r", guidance="cfg", guidance_params={"scale": 2.0})
    main = load_model(model)
    cond = class_conditioning(main.config, list(range(10)), "balanced", 0, torch.device("cpu"))
    x = generate(Models(main), build_guidance("cfg", scale=2.0), cond, list(range(10)), seed=0, steps=3, solver="euler",
                 device=torch.device("cpu"))
    # (10, 32, 32, 3) uint8, DiT's rounding; one latent per decoder call, as sampling decodes (docs/design.md, "Numerics")
    assert np.array_equal(images(out), load_vae(vae).decode(x, batch_size=DECODE_BATCH))
    assert images(out).shape == (10, 32, 32, 3)
    info = RunDir(out).info()
    assert info.decoder == vae_identity(vae) and info.decoder["source"] == str(vae)
    recorded = json.loads((out / "sample_config.json").read_text())
    assert recorded["decoder"] == {k: v for k, v in vae_identity(vae).items() if k != "source"}
    assert "precision" not in recorded and "vae" not in recorded  # the VAE counts by content, not by path


def test_latent_samples_do_not_depend_on_batch_size(latent, tmp_path):
    model, vae = latent
    a, b = run(model, vae, tmp_path / "a", batch_size=3), run(model, vae, tmp_path / "b", batch_size=10)
    assert (a / "samples.npz").read_bytes() == (b / "samples.npz").read_bytes()


def test_another_vae_never_resumes_a_run_and_a_moved_one_does(latent, tmp_path):
    model, vae = latent
    out = run(model, vae, tmp_path / "r")
    shutil.copytree(vae, tmp_path / "moved")
    assert run(model, tmp_path / "moved", tmp_path / "r") == out  # the same VAE elsewhere: finished, kept
    tiny_vae(tmp_path / "other", seed=1)
    with pytest.raises(SgbenchError, match=r"another configuration \(differs in: decoder\)"):
        run(model, tmp_path / "other", tmp_path / "r")


def test_a_latent_model_without_a_vae_is_one_line_naming_what_to_get(latent, tmp_path):
    model, _ = latent
    with pytest.raises(SgbenchError, match=r"is a latent model \(4 channels at 4x4\).*stabilityai/sd-vae-ft-ema.*--vae DIR") as e:
        run(model, None, tmp_path / "r")
    assert "\n" not in str(e.value) and not (tmp_path / "r").exists()
    result = runner.invoke(app, ["sample", "-c", str(model), "-n", "10", "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "is a latent model" in result.output and "Traceback" not in result.output


def test_the_vae_recorded_in_the_checkpoint_decodes_without_vae(latent, tmp_path):
    from sgbench.models.vae import vae_identity

    model, vae = latent
    recorded = tmp_path / "recorded.safetensors"
    save_model(load_model(model), recorded, extra={"vae": vae_identity(vae)})  # as `sgbench import --vae` writes it
    out = run(recorded, None, tmp_path / "r")
    assert RunDir(out).info().decoder["source"] == str(vae)
    assert np.array_equal(images(out), images(run(model, vae, tmp_path / "explicit")))


def test_a_pixel_model_refuses_a_vae(latent, tmp_path):
    from sgbench.models import SiT, preset

    _, vae = latent
    save_model(SiT(preset("Tiny-test")), tmp_path / "pixel.safetensors")
    with pytest.raises(SgbenchError, match=r"--vae decodes latent models, but .* is a pixel-space model \(1 channel\(s\)\): drop --vae"):
        run(tmp_path / "pixel.safetensors", vae, tmp_path / "r")


def test_bf16_autocasts_the_model_forwards_only(latent, tmp_path):
    model, vae = latent
    fp32 = run(model, vae, tmp_path / "fp32", guidance="sg", guidance_params={"gs": 0.25, "gw": 0.75, "scale": 2.0})
    bf16 = run(model, vae, tmp_path / "bf16", guidance="sg", guidance_params={"gs": 0.25, "gw": 0.75, "scale": 2.0}, precision="bf16")
    a, b = images(fp32).astype(int), images(bf16).astype(int)
    assert not np.array_equal(a, b) and np.abs(a - b).mean() < 2  # rounded matmuls, the same samples otherwise
    assert json.loads((bf16 / "sample_config.json").read_text())["precision"] == "bf16"
    with pytest.raises(SgbenchError, match=r"another configuration \(differs in: precision\)"):
        run(model, vae, tmp_path / "fp32", guidance="sg", guidance_params={"gs": 0.25, "gw": 0.75, "scale": 2.0}, precision="bf16")
    with pytest.raises(SgbenchError, match="Expected --precision fp32 or bf16 but got 'fp16'"):
        run(model, vae, tmp_path / "r", precision="fp16")


@pytest.mark.slow
def test_imagenet_path_end_to_end_through_the_cli(latent, tmp_path, monkeypatch):
    """stats import-adm -> sample --vae -> eval fid --extractor inception -> compare --reference paper, with
    a random-weights InceptionV3 saved in torch-fidelity's format (its numbers mean nothing)."""
    from sgbench.utils.files import sha256_file
    from sgbench.evaluation.inception import InceptionExtractor

    model, vae = latent
    monkeypatch.setenv("SGBENCH_REFERENCE_STATS", str(tmp_path / "refs"))
    torch.manual_seed(0)
    weights = tmp_path / "inception-random.pth"
    torch.save(InceptionExtractor.create(random_init=True).state_dict(), weights)
    rng = np.random.default_rng(0)
    adm = {"arr_0": rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8), "mu": np.zeros(2048), "sigma": np.eye(2048),
           "mu_s": np.zeros(2023), "sigma_s": np.eye(2023)}
    np.savez(tmp_path / "VIRTUAL_tiny_labeled.npz", **adm)  # ADM's reference batch layout

    def cli(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    cli("stats", "import-adm", tmp_path / "VIRTUAL_tiny_labeled.npz", "--weights", weights)
    out = tmp_path / "runs" / "sg"
    cli("sample", "-c", model, "--vae", vae, "-g", "sg", "--gs", "0.25", "--gw", "0.75", "--scale", "2", "-n", 10, "-b", 4,
        "--steps", 3, "-o", out)
    text = cli("eval", "fid", out, "--ref", "VIRTUAL_tiny", "--extractor", "inception", "--weights", weights, "--bootstrap", 20)
    assert "FID" in text and "sFID" in text
    records = {r.metric: r for r in RunDir(out).metrics()}
    assert {"fid", "sfid", "is", "precision", "recall"} <= set(records)
    assert all(r.extractor == "inception" and r.reference == "VIRTUAL_tiny" and r.num_samples == 10
               and r.weights_sha256 == sha256_file(weights) for r in records.values())
    assert np.isfinite(records["fid"].value) and records["fid"].ci95 is not None
    board = json.loads(cli("compare", tmp_path / "runs", "--reference", "paper", "-f", "json"))
    assert board["extractor"] == "inception" and len(board["rows"]) == 1
    assert {r["table"] for r in board["paper"]} == {2, 3}  # Inception runs: the literature's Table 3 too
