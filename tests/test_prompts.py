"""Prompt files (GenEval's evaluation_metadata.jsonl or plain text) and samples -> prompts."""

import json

import pytest
import torch

from sgbench.core.conditioning import PromptSet
from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.geneval.prompts import PROMPTS_FILE
from sgbench.core.conditioning import prompt_conditioning, prompt_ids
from sgbench.text.prompts import read_prompt_file, read_prompts
from sgbench.utils.files import sha256_file


def test_geneval_metadata_is_read_whole():
    records = read_prompts(PROMPTS_FILE)
    assert len(records) == 424 and all("prompt" in r and "tag" in r and "include" in r for r in records)
    first = json.loads(PROMPTS_FILE.read_text().splitlines()[0])
    assert records[0] == first


def test_plain_text_is_one_prompt_per_line_blank_lines_skipped(tmp_path):
    path = tmp_path / "p.txt"
    path.write_text("a photo of a bear\n\n  a red cat  \n")
    assert read_prompts(path) == [{"prompt": "a photo of a bear"}, {"prompt": "a red cat"}]


@pytest.mark.parametrize(
    "content,message",
    [
        (b"", "has no prompts"),
        (b"\n \n", "has no prompts"),
        (b'{"prompt": "a bear"}\n{"prompt": "a cat"\n', r"line 2 is not valid JSON \(Expecting ',' delimiter"),
        (b'{"prompt": "a bear"}\n\n{"tag": "colors"}\n', "line 3 has no 'prompt'"),
        (b'{"prompt": "a bear"}\n[1, 2]\n', "line 2 has no 'prompt'"),
        (b'{"prompt": ""}\n', "line 1: expected 'prompt' to be a non-empty string but got ''"),
        ("a b\u00e4r\n".encode("latin-1"), r"is not UTF-8 text \(byte 0xe4 at offset 3\)"),
    ],
)
def test_bad_prompt_files_are_one_clear_line(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_bytes(content)
    with pytest.raises(SgbenchError, match=message) as error:
        read_prompts(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("content,is_jsonl", [(b'{"prompt": "a bear"}\n\n{"prompt": "a cat"}\n', True), (b"a bear\n\na cat", False)])
def test_a_prompt_file_is_its_bytes_their_sha256_and_its_records_from_one_read(tmp_path, content, is_jsonl):
    """What a text run copies and records: the file's exact bytes (blank lines too) and their sha256."""
    path = tmp_path / "p"
    path.write_bytes(content)
    prompts = read_prompt_file(path)
    assert prompts.data == content and prompts.sha256 == sha256_file(path) and prompts.is_jsonl == is_jsonl
    assert prompts.records == read_prompts(path) and prompts.texts == ["a bear", "a cat"]


def test_missing_prompt_file(tmp_path):
    with pytest.raises(SgbenchError, match=r"Prompt file not found: .*nope.jsonl \(expected GenEval's"):
        read_prompts(tmp_path / "nope.jsonl")


def test_samples_map_to_prompts_as_geneval_lays_them_out():
    assert prompt_ids([0, 1, 2, 3, 4, 9], 4).tolist() == [0, 0, 0, 0, 1, 2]
    cond = prompt_conditioning(PromptSet(["a", "b", "c"]), [5, 11], 4)
    assert torch.equal(cond.prompt_ids, torch.tensor([1, 2]))
    with pytest.raises(SgbenchError, match="Sample 12 needs prompt 3 but there are 3 prompts"):
        prompt_conditioning(PromptSet(["a", "b", "c"]), [12], 4)
    with pytest.raises(SgbenchError, match="Expected --images-per-prompt >= 1 but got 0"):
        prompt_ids([0], 0)
