"""`data encode`: ADM's crop, latent shards that do not depend on the process count or on resuming."""

import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sgbench.data.encode import center_crop_arr, encode_dataset, read_latent_shards, scan_image_folder, shard_name
from sgbench.utils.errors import SgbenchError

pytest.importorskip("diffusers")
from test_vae import tiny_vae  # noqa: E402

SIZE = 16  # the tiny VAE downsamples 2x: 8x8 latents


def image_folder(root, per_class=(3, 2, 2), seed=0):
    """Class folders of random images of assorted sizes and modes (RGB, grayscale, RGBA), like ImageNet's."""
    rng = np.random.default_rng(seed)
    shapes = [(40, 30), (17, 50), (16, 16), (70, 33)]
    for c, n in enumerate(per_class):
        (root / f"n0{c}").mkdir(parents=True)
        for i in range(n):
            h, w = shapes[(c + i) % len(shapes)]
            mode = ["RGB", "L", "RGBA"][(c + i) % 3]
            channels = {"RGB": 3, "L": 1, "RGBA": 4}[mode]
            arr = rng.integers(0, 256, (h, w, channels), dtype=np.uint8).squeeze()
            Image.fromarray(arr, mode).save(root / f"n0{c}" / f"img{i}.png")
    (root / "n00" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vae")
    tiny_vae(directory)
    return directory


@pytest.fixture(scope="module")
def vae(vae_dir):
    from sgbench.models.vae import load_vae

    return load_vae(vae_dir)


def shards(directory):
    out = {}
    for path in sorted(directory.glob("shard-*.npz")):
        with np.load(path) as f:
            out[path.name] = {k: f[k] for k in f.files}
    return out


def test_center_crop_is_adms():
    square = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    assert np.array_equal(center_crop_arr(Image.fromarray(square), SIZE), square)  # already the size: untouched
    wide = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 100, 3), dtype=np.uint8))
    # 48 >= 2 * 16: BOX-halve to 50x24, BICUBIC to 33x16 (short side 16), crop columns 8..23
    expected = np.array(wide.resize((50, 24), Image.BOX).resize((33, 16), Image.BICUBIC))[:, 8:24]
    assert np.array_equal(center_crop_arr(wide, SIZE), expected)


def test_one_and_two_processes_write_identical_shards(tmp_path, vae):
    root = image_folder(tmp_path / "images")
    encode_dataset(root, tmp_path / "one", vae, size=SIZE, shard_size=3, log=None)
    for rank in (1, 0):  # each process writes only shards k % 2 == rank; order does not matter
        encode_dataset(root, tmp_path / "two", vae, size=SIZE, shard_size=3, rank=rank, world=2, log=None)
    one, two = shards(tmp_path / "one"), shards(tmp_path / "two")
    assert list(one) == [shard_name(k) for k in range(3)] == list(two)
    for name in one:
        for key in one[name]:
            assert np.array_equal(one[name][key], two[name][key]), (name, key)
    assert (tmp_path / "one" / "manifest.json").read_text() == (tmp_path / "two" / "manifest.json").read_text()


def test_manifest_records_classes_counts_vae_and_crop(tmp_path, vae):
    root = image_folder(tmp_path / "images")
    encode_dataset(root, tmp_path / "out", vae, size=SIZE, shard_size=4, log=None)
    m = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert m["classes"] == ["n00", "n01", "n02"] and m["counts"] == [3, 2, 2] and m["num_images"] == 7
    assert m["num_shards"] == 2 and m["vae"]["weights_sha256"] == vae.identity["weights_sha256"]
    assert "BOX" in m["crop"] and "BICUBIC" in m["crop"] and m["size"] == SIZE and m["flip"] is False


def test_a_rerun_skips_finished_shards_and_redoes_missing_ones(tmp_path, vae):
    root = image_folder(tmp_path / "images")
    out = encode_dataset(root, tmp_path / "out", vae, size=SIZE, shard_size=3, log=None)
    before = shards(out)
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-*.npz")}
    (out / shard_name(1)).unlink()
    (out / ".shard-00001.tmp99.npz").write_bytes(b"half a shard from a killed run")
    encode_dataset(root, out, vae, size=SIZE, shard_size=3, log=None)
    assert (out / shard_name(0)).stat().st_mtime_ns == mtimes[shard_name(0)]
    assert (out / shard_name(2)).stat().st_mtime_ns == mtimes[shard_name(2)]
    after = shards(out)
    assert all(np.array_equal(before[n][k], after[n][k]) for n in before for k in before[n])


def test_flips_add_the_mirrored_images(tmp_path, vae):
    root = image_folder(tmp_path / "images", per_class=(2, 1, 1))
    out = encode_dataset(root, tmp_path / "out", vae, size=SIZE, shard_size=10, flip=True, log=None)
    s = shards(out)[shard_name(0)]
    assert s["latents"].shape == (8, 4, 8, 8) and s["flipped"].tolist() == [False] * 4 + [True] * 4
    assert s["labels"].tolist() == [0, 0, 1, 2] * 2 and s["index"].tolist() == [0, 1, 2, 3] * 2
    _, items = scan_image_folder(root)
    crop = center_crop_arr(Image.open(root / items[2][0]).convert("RGB"), SIZE)
    torch.testing.assert_close(torch.from_numpy(s["latents"][6]), vae.encode(crop[None, :, ::-1].copy())[0])


def test_training_reads_the_shard_directory(tmp_path, vae):
    from sgbench.workflows.train import load_training_data

    root = image_folder(tmp_path / "images")
    out = encode_dataset(root, tmp_path / "out", vae, size=SIZE, shard_size=3, log=None)
    recipe = SimpleNamespace(data=SimpleNamespace(dataset="latents", path=str(out)))
    latents, labels = load_training_data(recipe)
    assert latents.shape == (7, 4, 8, 8) and latents.dtype == torch.float32
    assert labels.tolist() == [0, 0, 0, 1, 1, 2, 2]
    (out / shard_name(2)).unlink()
    with pytest.raises(SgbenchError, match="unfinished: 1 of 3 shards missing"):
        read_latent_shards(out)


def test_another_configuration_in_the_same_directory_is_refused(tmp_path, vae):
    root = image_folder(tmp_path / "images")
    encode_dataset(root, tmp_path / "out", vae, size=SIZE, shard_size=3, log=None)
    with pytest.raises(SgbenchError, match=r"another configuration \(differs in \['flip'\]\)"):
        encode_dataset(root, tmp_path / "out", vae, size=SIZE, shard_size=3, flip=True, log=None)


def test_missing_or_empty_dataset(tmp_path):
    with pytest.raises(SgbenchError, match="Dataset directory not found"):
        scan_image_folder(tmp_path / "nope")
    (tmp_path / "empty" / "n00").mkdir(parents=True)
    with pytest.raises(SgbenchError, match="No images found"):
        scan_image_folder(tmp_path / "empty")


def test_cli_encodes_and_a_rerun_keeps_the_shards(tmp_path, vae_dir):
    from typer.testing import CliRunner

    from sgbench.cli import app

    root = image_folder(tmp_path / "images")
    args = ["data", "encode", str(root), str(tmp_path / "out"), "--vae", str(vae_dir), "--size", str(SIZE), "--shard-size", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "7 images in 3 classes -> 3 shards" in result.output
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("shard-*.npz")}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and "0 of its 3 shards to do" in again.output
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("shard-*.npz")} == mtimes
    missing = CliRunner().invoke(app, args[:-4] + ["--vae", str(tmp_path / "no-vae")])
    assert missing.exit_code == 2 and "No VAE at" in missing.output and "stabilityai/sd-vae-ft-ema" in missing.output


@pytest.mark.slow
def test_torchrun_two_processes_write_the_shards_of_one(tmp_path, vae_dir):
    import subprocess
    import sys

    from sgbench.models.vae import load_vae

    root = image_folder(tmp_path / "images")
    encode_dataset(root, tmp_path / "one", load_vae(vae_dir), size=SIZE, shard_size=2, log=None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
           "-m", "sgbench.cli", "data", "encode", str(root), str(tmp_path / "two"), "--vae", str(vae_dir),
           "--size", str(SIZE), "--shard-size", "2"]
    two = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = shards(tmp_path / "one"), shards(tmp_path / "two")
    assert list(a) == [shard_name(k) for k in range(4)] == list(b)
    assert all(np.array_equal(a[n][k], b[n][k]) for n in a for k in a[n])


def test_a_model_trained_on_the_shards_samples_through_their_vae_without_vae(tmp_path, vae_dir):
    import yaml

    from sgbench.workflows.recipes import load_train_recipe
    from sgbench.models.checkpoint import load_extra
    from sgbench.runs.rundir import RunDir
    from sgbench.sampling import SampleConfig, sample_run
    from sgbench.workflows.train import train
    from sgbench.models.vae import load_vae

    root = image_folder(tmp_path / "images")
    encode_dataset(root, tmp_path / "latents", load_vae(vae_dir), size=SIZE, shard_size=4, log=None)
    recipe = {"name": "tiny-latent", "out": str(tmp_path / "train"),
              "model": {"preset": "Tiny-test", "routes": [[1, 2, 0.5]], "overrides": {"in_channels": 4, "input_size": 8}},
              "data": {"dataset": "latents", "path": str(tmp_path / "latents")},
              "train": {"steps": 2, "batch_size": 4, "log_every": 1, "ckpt_every": 2}}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    out = train(load_train_recipe(tmp_path / "recipe.yaml"), progress=False)
    recorded = load_extra(out / "model.safetensors")["vae"]
    assert recorded["source"] == str(vae_dir) and recorded["weights_sha256"] == load_vae(vae_dir).identity["weights_sha256"]
    run = sample_run(SampleConfig(checkpoint=str(out / "model.safetensors"), out=str(tmp_path / "run"), num=4, steps=2), progress=False)
    assert RunDir(run).info().decoder["source"] == str(vae_dir)
    with np.load(run / "samples.npz") as f:
        assert f["arr_0"].shape == (4, SIZE, SIZE, 3)
