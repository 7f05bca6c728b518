"""Specifications of sgbench.evaluation: formulas against independent computations, invariances, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg

from sgbench.data.animal import load_animal_mnist
from sgbench.utils.errors import SgbenchError
from sgbench.evaluation import (
    build_reference, create_extractor, evaluate, frechet_distance, import_adm, load_reference, open_images,
    precision_recall, read_manifest, write_samples,
)
from sgbench.evaluation.animal_classifier import DEFAULT_WEIGHTS, read_model_card
from sgbench.utils.files import sha256_file
from sgbench.evaluation.base import to_rgb_nchw
from sgbench.evaluation.fd import RunningStats
from sgbench.evaluation.inception import WEIGHTS_FILENAME, resolve_inception_weights
from sgbench.evaluation.isc import inception_score
from sgbench.evaluation.reference import ReferenceEntry, _write_entry


SHIPPED = Path(__file__).resolve().parents[1] / "reference_stats"


@pytest.fixture
def ref_dir(tmp_path, monkeypatch):
    root = tmp_path / "reference_stats"
    monkeypatch.setenv("SGBENCH_REFERENCE_STATS", str(root))
    return root


def _run(tmp_path, images, labels=None, name="run"):
    run = tmp_path / name
    run.mkdir()
    write_samples(run / "samples.npz", images, labels)
    return run


def _numpy_fd(f1, f2):
    """Independent FD: np.mean / np.cov on all features at once, scipy's sqrtm (the ADM evaluator's route)."""
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


# --- formulas ----------------------------------------------------------------------------------------

def test_fd_from_streaming_stats_equals_numpy_scipy():
    rng = np.random.default_rng(0)
    f1 = rng.normal(3.0, 1.0, (600, 12)) @ rng.normal(size=(12, 12))
    f2 = rng.normal(3.5, 1.2, (500, 12)) @ rng.normal(size=(12, 12))
    stats = []
    for f in (f1, f2):
        s = RunningStats()
        for i in range(0, len(f), 37):
            s.update(f[i : i + 37])
        stats.append(s.mu_sigma())
    np.testing.assert_allclose(stats[0][1], np.cov(f1, rowvar=False), rtol=1e-10)
    assert frechet_distance(*stats[0], *stats[1]) == pytest.approx(_numpy_fd(f1, f2), rel=1e-6)


def test_fd_through_animal_extractor_equals_numpy_on_same_features(ref_dir):
    images = load_animal_mnist("test")[0][::2]
    net = create_extractor("animal")
    with torch.no_grad():
        feats = net.extract(to_rgb_nchw(images))["features"].double().numpy()
    write_samples(ref_dir.parent / "a.npz", images)
    build_reference("a", ref_dir.parent / "a.npz", extractor="animal", batch_size=128)
    ref = load_reference("a")
    np.testing.assert_allclose(ref.mu, feats.mean(0), rtol=1e-6, atol=1e-9)
    shifted = np.roll(images, 3, axis=2)  # samples: the same images shifted by 3 px
    with torch.no_grad():
        sample_feats = net.extract(to_rgb_nchw(shifted))["features"].double().numpy()
    ours = evaluate(_run(ref_dir.parent, shifted, name="shifted"), "a", "animal", batch_size=100)["metrics"]["fid"]
    assert ours == pytest.approx(_numpy_fd(sample_feats, feats), rel=1e-6)


def test_fd_matches_torch_fidelity_machinery_with_registered_extractor(ref_dir, tmp_path):
    import torch_fidelity

    images, _ = load_animal_mnist("test")
    a, b = images[:400], np.roll(images[400:800], 2, axis=1)

    class Images(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = to_rgb_nchw(x)

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    tf = torch_fidelity.calculate_metrics(
        input1=Images(b), input2=Images(a), fid=True, cuda=False, feature_extractor="sgbench-animal",
        batch_size=100, verbose=False, cache=False, save_cpu_ram=True,
    )["frechet_inception_distance"]
    write_samples(tmp_path / "a.npz", a)
    build_reference("a", tmp_path / "a.npz")
    ours = evaluate(_run(tmp_path, b), "a", "animal")["metrics"]["fid"]
    assert ours == pytest.approx(tf, rel=1e-5)  # torch-fidelity: float32 features, eigvals of the product


def test_inception_score_equals_torch_fidelity():
    from torch_fidelity.metric_isc import isc_features_to_metric

    logits = torch.randn(1003, 10) * 3
    ref = isc_features_to_metric(logits, splits=10, shuffle=False)
    assert inception_score(logits.numpy()) == pytest.approx((ref["inception_score_mean"], ref["inception_score_std"]), rel=1e-9)


def _brute_force_pr(ref, samples, k=3):
    """ADM's definition, all at once in float64."""
    def d2(a, b):
        return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    r_ref = np.sort(d2(ref, ref), axis=1)[:, k]
    r_s = np.sort(d2(samples, samples), axis=1)[:, k]
    cross = d2(ref, samples)
    return float((cross <= r_ref[:, None]).any(0).mean()), float((cross <= r_s[None, :]).any(1).mean())


def test_precision_recall_on_constructed_sets():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(300, 8)).astype(np.float32)
    assert precision_recall(ref, ref.copy()) == (1.0, 1.0)
    assert precision_recall(ref, ref + 100.0) == (0.0, 0.0)
    half = ref[ref[:, 0] > 0]  # samples cover half the reference: precise, half recalled
    p, r = precision_recall(ref, half)
    assert p == 1.0 and 0.3 < r < 0.9
    other = rng.normal(0.5, 1.0, size=(250, 8)).astype(np.float32)
    assert precision_recall(ref, other) == pytest.approx(_brute_force_pr(ref.astype(float), other.astype(float)), abs=1e-9)


def test_manifold_radii_do_not_depend_on_the_block_size(monkeypatch):
    from sgbench.evaluation import prc

    x = np.random.default_rng(1).normal(size=(90, 8)).astype(np.float32)
    whole = prc.manifold_radii(x)
    monkeypatch.setattr(prc, "BLOCK", 3)  # fewer columns per block than k + 1 neighbours: kept across blocks
    np.testing.assert_allclose(prc.manifold_radii(x), whole, rtol=1e-5)  # matmul blocking moves the last bits only
    np.testing.assert_allclose(whole, np.sort(((x[:, None] - x[None]) ** 2).sum(-1), axis=1)[:, 3], rtol=1e-4, atol=1e-5)


# --- invariances and end to end ----------------------------------------------------------------------

def test_fid_against_itself_is_zero_and_results_do_not_depend_on_batch_size(ref_dir, tmp_path):
    images, labels = load_animal_mnist("test")
    images, labels = images[::2], labels[::2]  # 500 images, 50 per class
    write_samples(tmp_path / "t.npz", images)
    build_reference("t", tmp_path / "t.npz")
    run = _run(tmp_path, images, labels)
    small = evaluate(run, "t", "animal", batch_size=33, kid=True)
    large = evaluate(run, "t", "animal", batch_size=1000, kid=True, reuse=False)  # computed again, not read back
    assert not small["reused"] and not large["reused"]
    assert abs(small["metrics"]["fid"]) < 1e-6
    assert small["metrics"]["precision"] == small["metrics"]["recall"] == 1.0
    assert small["metrics"]["class_accuracy"] > 0.95
    for k, v in small["metrics"].items():
        assert large["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-9), k
    records = json.loads((run / "metrics.json").read_text())["records"]
    assert {r["metric"] for r in records} == {"fid", "is", "is_std", "precision", "recall", "kid", "kid_std", "class_accuracy"}
    assert all(r["extractor"] == "animal" and r["reference"] == "t" and r["num_samples"] == 500
               and r["weights_sha256"] == sha256_file(DEFAULT_WEIGHTS) for r in records)


@pytest.mark.slow
def test_inception_path_end_to_end_with_random_weights(ref_dir, tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    write_samples(tmp_path / "ref.npz", images)
    torch.manual_seed(0)  # the same random weights for reference and samples
    entry, computed = build_reference("rnd", tmp_path / "ref.npz", extractor="inception", random_init=True, batch_size=5)
    ref = load_reference("rnd")
    assert computed and ref.mu.shape == (2048,) and ref.mu_s.shape == (2023,) and ref.features.shape == (10, 2048)
    run = _run(tmp_path, np.concatenate([images[5:], images[:5]]))
    torch.manual_seed(0)
    m = evaluate(run, "rnd", "inception", random_init=True, batch_size=4)["metrics"]
    assert set(m) == {"fid", "sfid", "is", "is_std", "precision", "recall"}
    assert abs(m["fid"]) < 1e-3 * np.trace(ref.sigma) and abs(m["sfid"]) < 1e-3 * np.trace(ref.sigma_s)  # same set
    assert m["precision"] == m["recall"] == 1.0


def test_shipped_classifier_and_reference_statistics_agree():
    card = read_model_card()
    assert card["test_accuracy"] >= 0.95 and card["command"] == "sgbench eval train-classifier"
    entry = read_manifest()["animal-all"]
    assert entry.weights_sha256 == sha256_file(DEFAULT_WEIGHTS)  # shipped stats were built with the shipped weights
    assert (entry.extractor, entry.num_images, entry.resolution) == ("animal", 10000, 32)


def test_reference_statistics_are_cached(ref_dir):
    entry, computed = build_reference("c", "animal:test")
    mtime = (ref_dir / entry.file).stat().st_mtime_ns
    again, computed_again = build_reference("c", "animal:test")
    assert computed and not computed_again and again == entry and (ref_dir / entry.file).stat().st_mtime_ns == mtime
    with pytest.raises(SgbenchError, match="Expected a new reference name but 'c' exists"):
        build_reference("c", "animal:train")


def test_npz_roundtrip_streams_stored_and_compressed(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (23, 8, 8, 3), dtype=np.uint8)
    write_samples(tmp_path / "a.npz", images, np.arange(23))
    np.savez_compressed(tmp_path / "b.npz", arr_0=images)
    for name in ("a.npz", "b.npz"):
        f = open_images(tmp_path / name)
        assert f.shape == (23, 8, 8, 3)
        np.testing.assert_array_equal(np.concatenate(list(f.batches(5))), images)


# --- refusals ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("array, key, message", [
    (np.zeros((4, 8, 8, 3), np.float32), "arr_0", r"Expected 'arr_0' in .* as uint8 NHWC .* but got a float32 array of shape \(4, 8, 8, 3\)"),
    (np.zeros((4, 3, 8, 8), np.uint8), "arr_0", r"but got a uint8 array of shape \(4, 3, 8, 8\) \(looks like NCHW: channels first\)"),
    (np.zeros((4, 8, 8, 3), np.uint8), "images", r"Expected key 'arr_0' \(uint8 NHWC images, the ADM sample layout\) in .* but found keys \['images'\]"),
    (np.zeros((8, 8, 3), np.uint8), "arr_0", r"but got a uint8 array of shape \(8, 8, 3\)"),
])
def test_bad_sample_npz_is_refused(tmp_path, array, key, message):
    np.savez(tmp_path / "s.npz", **{key: array})
    with pytest.raises(SgbenchError, match=message):
        open_images(tmp_path / "s.npz")


def test_reference_from_another_extractor_weights_or_resolution_is_refused(ref_dir, tmp_path):
    images, _ = load_animal_mnist("test")
    run = _run(tmp_path, images[:50])
    entry = ReferenceEntry("inc", "inc.npz", "inception", "abc", 10, 32, "test", 2, "now")
    _write_entry(ref_dir, entry, {"mu": np.zeros(2048), "sigma": np.eye(2048), "features": np.zeros((2, 2048), np.float16)})
    with pytest.raises(SgbenchError, match="Expected reference statistics built with extractor 'animal' but reference 'inc' was built with 'inception'"):
        evaluate(run, "inc", "animal")
    build_reference("rnd", "animal:test", random_init=True)
    with pytest.raises(SgbenchError, match=r"Expected reference statistics built with animal weights sha256 .* but reference 'rnd' was built with random-init"):
        evaluate(run, "rnd", "animal")
    small = _run(tmp_path, images[:50, ::2, ::2], name="small")
    with pytest.raises(SgbenchError, match=r"Expected samples at the reference's resolution 32x32 but got 16x16 \(reference 'animal-all'\)"):
        evaluate(small, SHIPPED / "animal-all.npz", "animal")  # a reference given by path
    with pytest.raises(SgbenchError, match=r"Expected a reference name \(animal-all, inc, rnd; .*\) or a path to a reference .npz but got 'nope'"):
        evaluate(run, "nope", "animal")


def test_missing_inception_weights_message_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("SGBENCH_INCEPTION_WEIGHTS", raising=False)
    hub = tmp_path / "torch" / "hub" / "checkpoints" / WEIGHTS_FILENAME
    with pytest.raises(SgbenchError) as e:
        resolve_inception_weights()
    assert f"InceptionV3 weights not found. Get {WEIGHTS_FILENAME} from https://github.com/toshas/torch-fidelity/releases/" in str(e.value)
    assert f"put it at {hub}" in str(e.value) and "--weights" in str(e.value) and "SGBENCH_INCEPTION_WEIGHTS" in str(e.value)
    monkeypatch.setenv("SGBENCH_INCEPTION_WEIGHTS", str(tmp_path / "none.pth"))
    with pytest.raises(SgbenchError, match=r"Expected InceptionV3 weights at .*none.pth \(from SGBENCH_INCEPTION_WEIGHTS\) but there is no such file"):
        create_extractor("inception")


def test_adm_import(ref_dir, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    stats = {"mu": np.zeros(2048), "sigma": np.eye(2048), "mu_s": np.zeros(2023), "sigma_s": np.eye(2023)}
    np.savez_compressed(tmp_path / "VIRTUAL_tiny_labeled.npz", arr_0=images, **stats)
    entry, computed = import_adm(tmp_path / "VIRTUAL_tiny_labeled.npz", random_init=True)
    ref = load_reference("VIRTUAL_tiny")
    assert computed and entry.source == "ADM VIRTUAL_tiny_labeled.npz" and entry.resolution == 16
    np.testing.assert_array_equal(ref.sigma_s, np.eye(2023))
    assert ref.features.shape == (4, 2048) and "FID(our Inception on arr_0, ADM stats)" in entry.notes
    np.savez_compressed(tmp_path / "bad.npz", arr_0=images, mu=stats["mu"], sigma=stats["sigma"])
    with pytest.raises(SgbenchError, match=r"Expected an ADM reference batch with keys arr_0, mu, sigma, mu_s, sigma_s but .* has \['arr_0', 'mu', 'sigma'\] \(missing mu_s, sigma_s\)"):
        import_adm(tmp_path / "bad.npz", random_init=True)
