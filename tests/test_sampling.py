"""The sampler: solvers, per-sample seeding (batch size, process count, resume), run directories."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sgbench.utils.errors import SgbenchError
from sgbench.models import Route, SiT, preset
from sgbench.models.checkpoint import save_model
from sgbench.sampling import SampleConfig, eval_times, integrate, sample_run

# A 32x32 single-channel model with 16 tokens: the embedded benchmark's shapes at toy size.
TOY = preset("Tiny-test", routes=(Route(1, 2, 0.5),), input_size=32, patch_size=8, num_classes=10)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    model = SiT(TOY)
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.2
    path = tmp_path_factory.mktemp("ckpt") / "toy.safetensors"
    save_model(model, path)
    return path


def run(checkpoint, out, **kw):
    base = dict(checkpoint=str(checkpoint), out=str(out), num=10, batch_size=4, steps=4)
    base.update(kw)
    return sample_run(SampleConfig(**base), progress=False)


def samples(run_dir):
    with np.load(Path(run_dir) / "samples.npz") as f:
        return f["arr_0"], f["labels"]


def test_euler_integrates_a_constant_velocity_exactly():
    z = torch.zeros(2, 1, 4, 4)
    x = integrate(lambda x, t, n: torch.ones_like(x), z, steps=7)
    torch.testing.assert_close(x, torch.ones_like(z))


def test_heun_is_exact_for_a_velocity_linear_in_t():
    # dx/dt = t -> x(1) = 1/2; Heun (trapezoid) is exact except the final Euler step of size h: error h^2/2.
    steps = 10
    x = integrate(lambda x, t, n: torch.full_like(x, t), torch.zeros(1), steps=steps, solver="heun")
    assert abs(float(x) - (0.5 - 0.5 / steps**2)) < 1e-6


def test_eval_times_count_every_model_evaluation():
    assert eval_times(4, "euler") == [0, 0.25, 0.5, 0.75]
    assert eval_times(3, "heun") == [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3]
    calls = []
    integrate(lambda x, t, n: calls.append((t, n)) or x * 0, torch.zeros(1), steps=3, solver="heun")
    assert [t for t, _ in calls] == eval_times(3, "heun") and [n for _, n in calls] == list(range(5))


def test_run_directory_layout(checkpoint, tmp_path):
    out = run(checkpoint, tmp_path / "r", guidance="sg", guidance_params={"gs": 0.25, "gw": 0.75, "scale": 1.5})
    arr, labels = samples(out)
    assert arr.dtype == np.uint8 and arr.shape == (10, 32, 32, 1)
    assert labels.tolist() == [i % 10 for i in range(10)]  # class-balanced by default
    record = json.loads((out / "run.json").read_text())
    assert record["guidance"]["name"] == "sg" and float(record["guidance"]["params"]["gs"]) == 0.25
    assert record["flops"] and record["timing"]["images_per_s"] > 0
    assert (out / "grid.png").stat().st_size > 0


@pytest.mark.parametrize("guidance,params", [("unguided", {}), ("sg", {"gs": 0.25, "gw": 0.75, "scale": 2.0})])
def test_samples_do_not_depend_on_batch_size(checkpoint, tmp_path, guidance, params):
    a = run(checkpoint, tmp_path / "a", guidance=guidance, guidance_params=params, batch_size=3)
    b = run(checkpoint, tmp_path / "b", guidance=guidance, guidance_params=params, batch_size=64)
    assert (a / "samples.npz").read_bytes() == (b / "samples.npz").read_bytes()


def test_another_seed_gives_other_samples(checkpoint, tmp_path):
    a, _ = samples(run(checkpoint, tmp_path / "a", seed=0))
    b, _ = samples(run(checkpoint, tmp_path / "b", seed=1))
    assert not np.array_equal(a, b)


def test_random_labels_are_seeded(checkpoint, tmp_path):
    _, a = samples(run(checkpoint, tmp_path / "a", labels="random"))
    _, b = samples(run(checkpoint, tmp_path / "b", labels="random", batch_size=7))
    assert a.tolist() == b.tolist() and a.tolist() != [i % 10 for i in range(10)]


def test_a_killed_run_resumes_to_the_same_samples(checkpoint, tmp_path):
    whole = run(checkpoint, tmp_path / "whole")
    part = run(checkpoint, tmp_path / "part")
    shards = sorted((part / "shards").glob("shard-*.npz"))
    shards[-1].unlink()  # as if killed before the last batch was written
    (part / "samples.npz").unlink()
    (part / "shards" / "shard-99999999-99999999-w1.npz.tmp").write_bytes(b"half a file")  # a torn write
    run(checkpoint, tmp_path / "part", batch_size=2)
    assert (whole / "samples.npz").read_bytes() == (part / "samples.npz").read_bytes()


def test_resuming_with_another_configuration_is_refused(checkpoint, tmp_path):
    run(checkpoint, tmp_path / "r")
    with pytest.raises(SgbenchError, match=r"another configuration \(differs in: seed\)"):
        run(checkpoint, tmp_path / "r", seed=5)


@pytest.mark.parametrize("spelled", [{}, {"gs": "0.5", "gw": "0.9"}, {"gs": 0.5, "gw": 0.9, "scale": "1.5"},
                                     {"interval": "0:1", "gs": "constant:0.5:0.5"}])
def test_equal_guidance_settings_are_one_run_however_spelled(checkpoint, tmp_path, spelled):
    """Defaults filled and values parsed before the identity is taken: `-g sg`, `--gs 0.5 --gw 0.9`
    (strings from the CLI) and YAML's floats are the same run, so a rerun reuses it."""
    first = SampleConfig(checkpoint=str(checkpoint), out=str(tmp_path / "r"), guidance="sg", num=4, steps=2)
    again = replace(first, guidance_params=spelled)
    assert again.identity() == first.identity()
    assert first.identity()["guidance_params"] == {"scale": 1.5, "gs": 0.5, "gw": 0.9, "interval": [0.0, 1.0]}


def test_different_guidance_settings_are_different_runs(checkpoint, tmp_path):
    base = SampleConfig(checkpoint=str(checkpoint), out=str(tmp_path / "r"), guidance="sg", num=4, steps=2)
    other = replace(base, guidance_params={"gs": "cosine:0.5:0"})
    assert other.identity()["guidance_params"]["gs"] == "cosine:0.5:0"
    assert other.identity() != base.identity()


def test_a_checkpoint_replaced_in_place_does_not_resume_old_samples(tmp_path):
    path = tmp_path / "model.safetensors"
    save_model(SiT(TOY), path)
    run(path, tmp_path / "r")
    torch.manual_seed(1)
    save_model(SiT(TOY), path)  # retrained and exported to the same path
    with pytest.raises(SgbenchError, match=r"another configuration \(differs in: checkpoint_sha256\)"):
        run(path, tmp_path / "r")


@pytest.mark.parametrize("guidance,params", [("sg", {"gs": 0.5, "gw": 0.9}), ("cfg+sg", {"gs": 0.0, "gw": 0.5})])
def test_sparse_guidance_on_a_dense_model_is_refused(tmp_path, guidance, params):
    path = tmp_path / "dense.safetensors"
    save_model(SiT(replace(TOY, routes=())), path)
    with pytest.raises(SgbenchError, match=r"(strong|weak) branch at token drop rate 0.5 .* has no routes and no masking"):
        run(path, tmp_path / "r", guidance=guidance, guidance_params=params)
    run(path, tmp_path / "cfg", guidance="cfg", guidance_params={"scale": 2.0})  # dense methods still run


@pytest.mark.parametrize(
    "kw,message",
    [
        (dict(solver="rk4"), "Unknown solver 'rk4'"),
        (dict(num=0), "--num-samples >= 1"),
        (dict(labels="sorted"), "balanced or random"),
        (dict(guidance="ag"), "guide"),
    ],
)
def test_user_errors(checkpoint, tmp_path, kw, message):
    with pytest.raises(SgbenchError, match=message):
        run(checkpoint, tmp_path / "r", **kw)


def test_a_negative_seed_is_refused_before_anything_is_written(checkpoint, tmp_path):
    with pytest.raises(SgbenchError) as e:
        run(checkpoint, tmp_path / "r", seed=-1)
    assert str(e.value) == "Expected --seed >= 0 (any non-negative integer) but got -1"
    assert not (tmp_path / "r").exists()


def test_any_non_negative_seed_samples(checkpoint, tmp_path):
    """numpy's SeedSequence hashes integers of any size: there is no upper bound such as 2**32."""
    a, _ = samples(run(checkpoint, tmp_path / "a", seed=2**70, num=2))
    b, _ = samples(run(checkpoint, tmp_path / "b", seed=2**70 + 1, num=2))
    assert not np.array_equal(a, b)


def test_a_finished_run_whose_samples_changed_is_refused_not_kept(checkpoint, tmp_path):
    from sgbench.utils.files import atomic_savez

    out = run(checkpoint, tmp_path / "r")
    assert json.loads((out / "run.json").read_text())["samples"]["sha256"]
    os.utime(out / "samples.npz", ns=(1, 1))  # touched (a copy, say) but the same bytes: still finished
    run(checkpoint, out)
    images, labels = samples(out)
    images[0, 0, 0, 0] ^= 1
    atomic_savez(out / "samples.npz", arr_0=images, labels=labels)
    changed = (out / "samples.npz").read_bytes()
    with pytest.raises(SgbenchError) as e:
        run(checkpoint, out)
    assert str(e.value) == (f"{out / 'samples.npz'} changed since sampling wrote it (its sha256 is not the one run.json "
                            f"records); to sample the run again, delete {out} or choose another --out")
    assert (out / "samples.npz").read_bytes() == changed


@pytest.mark.slow
def test_two_processes_give_the_same_samples_as_one(checkpoint, tmp_path):
    one = run(checkpoint, tmp_path / "one", guidance="cfg", guidance_params={"scale": 2.0})
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
        "-m", "sgbench.cli", "sample", "-c", str(checkpoint), "--guidance", "cfg", "--scale", "2",
        "--num-samples", "10", "--batch-size", "3", "--steps", "4", "--out", str(tmp_path / "two"),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (one / "samples.npz").read_bytes() == (tmp_path / "two" / "samples.npz").read_bytes()
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
