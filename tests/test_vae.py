"""The VAE loader and codec, on a tiny randomly initialised AutoencoderKL saved with save_pretrained."""

import numpy as np
import pytest
import torch

from sgbench.utils.errors import SgbenchError

diffusers = pytest.importorskip("diffusers")


def tiny_vae(directory, seed=0):
    """A 2-level AutoencoderKL (downsampling 2x, 4 latent channels) saved as diffusers does."""
    torch.manual_seed(seed)
    model = diffusers.AutoencoderKL(
        block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=16,
    )
    model.save_pretrained(directory)
    return model.eval()


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vae")
    tiny_vae(directory)
    return directory


def images(n=3, size=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_encode_is_the_scaled_posterior_mean_and_decode_rounds_like_dit(vae_dir):
    from sgbench.models.vae import load_vae

    vae = load_vae(vae_dir)
    original = diffusers.AutoencoderKL.from_pretrained(vae_dir).eval()
    x = images()
    z = vae.encode(x)
    assert z.shape == (3, 4, 8, 8) and z.dtype == torch.float32 and vae.scaling_factor == 0.18215
    with torch.no_grad():
        pixels = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
        torch.testing.assert_close(z, original.encode(pixels).latent_dist.mean * 0.18215)
        decoded = original.decode(z / 0.18215).sample
    out = vae.decode(z)
    assert out.shape == (3, 16, 16, 3) and out.dtype == np.uint8
    expected = torch.clamp(127.5 * decoded + 128.0, 0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(out, expected)  # DiT / SiT sample_ddp.py's conversion


def test_results_do_not_depend_on_the_batch_size(vae_dir):
    from sgbench.models.vae import load_vae

    vae = load_vae(vae_dir)
    x = images(5)
    torch.testing.assert_close(vae.encode(x, batch_size=2), vae.encode(x, batch_size=5), atol=1e-6, rtol=1e-5)
    z = vae.encode(x)
    assert np.abs(vae.decode(z, batch_size=1).astype(int) - vae.decode(z, batch_size=4).astype(int)).max() <= 1


def test_identity_names_config_and_weights(vae_dir, tmp_path):
    from sgbench.models.vae import load_vae

    a, b = load_vae(vae_dir).identity, load_vae(vae_dir).identity
    assert a == b and len(a["weights_sha256"]) == 64 and a["scaling_factor"] == 0.18215
    tiny_vae(tmp_path / "other", seed=1)
    other = load_vae(tmp_path / "other").identity
    assert other["weights_sha256"] != a["weights_sha256"] and other["config_sha256"] == a["config_sha256"]


def test_a_pipeline_directory_with_a_vae_subfolder_loads(vae_dir, tmp_path):
    import shutil

    from sgbench.models.vae import load_vae

    shutil.copytree(vae_dir, tmp_path / "sd" / "vae")
    assert load_vae(tmp_path / "sd").identity["weights_sha256"] == load_vae(vae_dir).identity["weights_sha256"]


@pytest.mark.parametrize("source", ["missing-dir", "no-such-org/no-such-vae"])
def test_a_missing_vae_is_one_line_naming_what_to_get(tmp_path, source):
    from sgbench.models.vae import load_vae

    where = str(tmp_path / source) if source == "missing-dir" else source
    with pytest.raises(SgbenchError, match=r"stabilityai/sd-vae-ft-ema.*--vae DIR") as e:
        load_vae(where)
    assert "\n" not in str(e.value)


def test_encode_refuses_float_images(vae_dir):
    from sgbench.models.vae import load_vae

    with pytest.raises(SgbenchError, match=r"Expected uint8 images \(N, H, W, 3\)"):
        load_vae(vae_dir).encode(np.zeros((1, 16, 16, 3), np.float32))
