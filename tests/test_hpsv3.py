"""HPSv3 through the hpsv3 package: end to end on a tiny random Qwen2-VL reward model built from the
package's own classes (CPU, local files only), and every error message (those need no extra)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import json
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import save_file

from sgbench.utils.errors import SgbenchError
from sgbench.evaluation import write_samples
from sgbench.evaluation.hpsv3_score import benchmark_means, hpsv3_scores, metric_records, read_prompts

PROMPTS = ["a bear in the snow", "a bowl of ramen", "two cats on a red sofa", "a giraffe", "a slice of cake"]
CATEGORIES = ["animals", "food", "animals", "animals", "food"]  # unequal sizes: overall != pooled mean


def _import_hpsv3_or_skip():
    """hpsv3, or a skip where the extra is not installed at all; where it is installed (CI installs it on
    purpose) a broken import fails the test instead of passing as a skip."""
    try:
        importlib.metadata.distribution("hpsv3")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the hpsv3 extra is not installed (pip install -e '.[hpsv3]')")
    return importlib.import_module("hpsv3")


# ---------------------------------------------------------------------------- a tiny HPSv3 on local files


def _save_tiny_qwen2_vl(out: Path) -> None:
    """A random Qwen2-VL (2 layers, width 32, a 1-block vision tower) with a byte-level tokenizer,
    the image processor and a chat template of the same form as Qwen2-VL-7B-Instruct's."""
    from transformers import Qwen2Tokenizer, Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor

    out.mkdir(parents=True)
    (out / "vocab.json").write_text(json.dumps({ch: i for i, ch in enumerate(bytes_to_unicode().values())}))
    (out / "merges.txt").write_text("#version: 0.2\n")
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = Qwen2Tokenizer(out / "vocab.json", out / "merges.txt", unk_token=None, bos_token=None,
                               eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    template = (
        "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
        "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
        "{% for content in message['content'] %}{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
        "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(), tokenizer=tokenizer, chat_template=template).save_pretrained(out)
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    config = Qwen2VLConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, tie_word_embeddings=False,
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2},
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
    )
    Qwen2VLForConditionalGeneration(config).save_pretrained(out)


def _save_reward_checkpoint(base: Path, out: Path) -> None:
    """The full reward model as hpsv3 saves it: the base weights, one added <|Reward|> token and a
    ranknet head (2 outputs: mu, sigma), drawn wide so that scores differ visibly between images."""
    from hpsv3.model.qwen2vl_trainer import Qwen2VLRewardModelBT
    from transformers import AutoTokenizer

    reward_token = len(AutoTokenizer.from_pretrained(base))  # the id hpsv3 gives <|Reward|>
    model = Qwen2VLRewardModelBT.from_pretrained(base, output_dim=2, reward_token="special",
                                                 special_token_ids=[reward_token], rm_head_type="ranknet")
    model.resize_token_embeddings(reward_token + 1)
    for p in model.rm_head.parameters():
        torch.nn.init.normal_(p, std=0.5)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, out)


@pytest.fixture(scope="module")
def tiny_hpsv3(tmp_path_factory):
    _import_hpsv3_or_skip()
    root = tmp_path_factory.mktemp("hpsv3")
    torch.manual_seed(0)
    _save_tiny_qwen2_vl(root / "Qwen2-VL-tiny")
    _save_reward_checkpoint(root / "Qwen2-VL-tiny", root / "HPSv3.safetensors")
    images = np.random.default_rng(0).integers(0, 256, (len(PROMPTS), 32, 32, 3), dtype=np.uint8)
    write_samples(root / "samples.npz", images)
    return SimpleNamespace(root=root, base=root / "Qwen2-VL-tiny", checkpoint=root / "HPSv3.safetensors",
                           samples=root / "samples.npz", images=images)


def _refuse_network(*args, **kwargs):
    raise AssertionError(f"HPSv3 scoring opened a network connection: {args}")


@pytest.fixture(scope="module")
def scored(tiny_hpsv3):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", _refuse_network)
        return hpsv3_scores(tiny_hpsv3.samples, PROMPTS, checkpoint=tiny_hpsv3.checkpoint, base_model=tiny_hpsv3.base,
                            categories=CATEGORIES, device="cpu", batch_size=2)


@pytest.mark.slow
def test_hpsv3_scores_equal_the_package_scoring_png_files_as_its_benchmark_does(tiny_hpsv3, scored):
    """Parity with hpsv3's own path (evaluate/benchmark.py): PNG files by path, its config, one batch."""
    from PIL import Image

    hpsv3 = _import_hpsv3_or_skip()
    config = yaml.safe_load((Path(hpsv3.__file__).parent / "config/HPSv3_7B.yaml").read_text())
    config.update(model_name_or_path=str(tiny_hpsv3.base), bf16=False, torch_dtype="float32")
    (tiny_hpsv3.root / "config.yaml").write_text(yaml.safe_dump(config))
    paths = []
    for i, image in enumerate(tiny_hpsv3.images):
        paths.append(str(tiny_hpsv3.root / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    inferencer = hpsv3.HPSv3RewardInferencer(str(tiny_hpsv3.root / "config.yaml"), str(tiny_hpsv3.checkpoint), device="cpu")
    with torch.no_grad():
        expected = inferencer.reward(paths, PROMPTS).double().numpy()
    assert np.ptp(expected[:, 0]) > 0.05  # images score differently: parity is not trivial
    np.testing.assert_allclose(scored.mu, expected[:, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(scored.sigma, expected[:, 1], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_hpsv3_overall_is_the_unweighted_mean_of_category_means(scored):
    animals, food = scored.mu[[0, 2, 3]].mean(), scored.mu[[1, 4]].mean()
    assert scored.categories == tuple(CATEGORIES)
    assert scored.category_means == pytest.approx({"animals": animals, "food": food})
    assert scored.overall == pytest.approx((animals + food) / 2)
    assert scored.overall != pytest.approx(scored.mu.mean())  # not the pooled mean


@pytest.mark.slow
def test_hpsv3_metric_records(tiny_hpsv3, scored):
    sha = hashlib.sha256(tiny_hpsv3.checkpoint.read_bytes()).hexdigest()
    records = metric_records(scored)
    assert [(r["metric"], r["num_samples"]) for r in records] == [("hpsv3", 5), ("hpsv3/animals", 3), ("hpsv3/food", 2)]
    assert [r["value"] for r in records] == [scored.overall, scored.category_means["animals"], scored.category_means["food"]]
    assert all(r["extractor"] == "hpsv3" and r["weights_sha256"] == sha for r in records)


@pytest.mark.slow
def test_hpsv3_refuses_a_checkpoint_that_does_not_fit_the_base_model(tiny_hpsv3, tmp_path):
    save_file({"rm_head.0.weight": torch.zeros(1024, 32)}, tmp_path / "head_only.safetensors")
    with pytest.raises(SgbenchError) as e:
        hpsv3_scores(tiny_hpsv3.samples, PROMPTS, checkpoint=tmp_path / "head_only.safetensors",
                     base_model=tiny_hpsv3.base, device="cpu")
    assert str(e.value).startswith(f"Expected HPSv3 to load {tmp_path / 'head_only.safetensors'} onto the Qwen2-VL-7B-Instruct")
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------- the benchmark's statistics, prompts


def test_benchmark_means_without_categories_is_the_mean_over_images():
    assert benchmark_means(np.array([1.0, 2.0, 6.0]), None) == ({}, 3.0)
    assert benchmark_means(np.array([1.0, 2.0, 6.0]), ["b", "a", "b"]) == ({"b": 3.5, "a": 2.0}, 2.75)


def test_read_prompts_plain_text_and_jsonl(tmp_path):
    (tmp_path / "p.txt").write_text("a cat\na dog\n")
    (tmp_path / "p.jsonl").write_text('{"prompt": "a cat", "category": "animals"}\n{"prompt": "a pie", "category": "food"}\n')
    (tmp_path / "q.jsonl").write_text('{"prompt": "a cat"}\n{"prompt": "a pie", "tag": "x"}\n')
    assert read_prompts(tmp_path / "p.txt") == (["a cat", "a dog"], None)
    assert read_prompts(tmp_path / "p.jsonl") == (["a cat", "a pie"], ["animals", "food"])
    assert read_prompts(tmp_path / "q.jsonl") == (["a cat", "a pie"], None)


@pytest.mark.parametrize("text, message", [
    ('{"prompt": "a cat"}\nnot json\n', "Expected one JSON object per line of {} but line 2 is not JSON: 'not json'"),
    ('{"text": "a cat"}\n', "Expected a \"prompt\" string on line 1 of {} but got '{{\"text\": \"a cat\"}}'"),
    ('{"prompt": "a", "category": "x"}\n{"prompt": "b"}\n',
     "Expected a \"category\" string on every line of {} or on none but line 2 has none"),
])
def test_read_prompts_refuses_bad_jsonl(tmp_path, text, message):
    (tmp_path / "p.jsonl").write_text(text)
    with pytest.raises(SgbenchError) as e:
        read_prompts(tmp_path / "p.jsonl")
    assert str(e.value) == message.format(tmp_path / "p.jsonl")


def test_read_prompts_refuses_a_missing_file(tmp_path):
    with pytest.raises(SgbenchError, match="Expected a prompts file"):
        read_prompts(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------------------- error messages (no extra needed)


@pytest.fixture
def files(tmp_path):
    """Stand-ins that pass the file checks: 2 samples, a base-model directory, a checkpoint with a head."""
    write_samples(tmp_path / "samples.npz", np.zeros((2, 8, 8, 3), np.uint8))
    base = tmp_path / "Qwen2-VL-7B-Instruct"
    base.mkdir()
    for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json", "chat_template.json"):
        (base / name).write_text(json.dumps({"model_type": "qwen2_vl"}))
    save_file({"w": torch.zeros(1)}, base / "model-00001-of-00005.safetensors")
    save_file({"rm_head.0.weight": torch.zeros(1)}, tmp_path / "HPSv3.safetensors")
    return SimpleNamespace(root=tmp_path, samples=tmp_path / "samples.npz", base=base, checkpoint=tmp_path / "HPSv3.safetensors")


def _error(files, prompts=("a", "b"), **options) -> str:
    kwargs = {"checkpoint": files.checkpoint, "base_model": files.base, "device": "cpu", **options}
    with pytest.raises(SgbenchError) as e:
        hpsv3_scores(files.samples, list(prompts), **kwargs)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_missing_extra_names_the_install_command(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "hpsv3", None)  # `import hpsv3` now raises ImportError
    message = _error(files)
    assert message.startswith("HPSv3 scoring needs the hpsv3 extra but importing it failed (")
    assert message.endswith(": pip install 'sgbench[hpsv3]'")


def test_missing_checkpoint_says_what_to_get(files):
    for path in (files.root / "nope.safetensors", files.root / "HPSv3.pth"):
        assert _error(files, checkpoint=path) == (
            "Expected the HPSv3 checkpoint (HPSv3.safetensors from https://huggingface.co/MizzenAI/HPSv3) at --checkpoint FILE "
            f"but got {path} (no such .safetensors file)")


def test_checkpoint_must_be_safetensors_with_a_reward_head(files):
    junk = files.root / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    assert f"in {junk} but it is not a safetensors file: " in _error(files, checkpoint=junk)
    base_weights = files.base / "model-00001-of-00005.safetensors"
    assert _error(files, checkpoint=base_weights) == (
        "Expected the HPSv3 reward model (HPSv3.safetensors from https://huggingface.co/MizzenAI/HPSv3) "
        f"in {base_weights} but it has no reward head (rm_head.*) tensors")


def test_missing_base_model_says_how_to_download_it(files):
    hint = "(get it with `huggingface-cli download Qwen/Qwen2-VL-7B-Instruct --local-dir DIR`)"
    assert _error(files, base_model=files.root / "nope") == (
        f"Expected the Qwen2-VL-7B-Instruct directory at --base-model DIR {hint} but {files.root / 'nope'} is not a directory")
    (files.base / "chat_template.json").unlink()
    (files.base / "model-00001-of-00005.safetensors").unlink()
    assert _error(files) == f"Expected Qwen2-VL-7B-Instruct in {files.base} {hint} but it lacks chat_template.json, *.safetensors"


def test_base_model_must_be_qwen2_vl(files):
    expected = "Expected Qwen2-VL-7B-Instruct (config.json with model_type qwen2_vl) in {} but its model_type is {}"
    (files.base / "config.json").write_text(json.dumps({"model_type": "llama"}))
    assert _error(files) == expected.format(files.base, "'llama'")
    (files.base / "config.json").write_text("{not json")
    assert _error(files) == expected.format(files.base, "None")


def test_device_must_be_cpu_or_an_available_gpu(files, monkeypatch):
    assert _error(files, device="tpu") == "Expected --device cpu, cuda or cuda:N but got 'tpu'"
    assert _error(files, device="mps") == "Expected --device cpu, cuda or cuda:N but got 'mps'"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _error(files, device="cuda:1") == (
        "Expected a CUDA GPU for --device cuda:1 but torch sees none; pass --device cpu (float32, far slower)")


def test_one_prompt_and_category_per_sample(files):
    assert _error(files, prompts=["a"]) == "Expected one prompt per sample (2) but got 1"
    assert _error(files, categories=["x"]) == "Expected one category per sample (2) but got 1"
    assert _error(files, batch_size=0) == "Expected a batch size >= 1 but got 0"
