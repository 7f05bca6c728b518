"""Text-to-image runs scored into metrics.json: the offline GenEval, the real GenEval's layout and results,
CLIP; and their leaderboard, kept apart from class-conditional ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from sgbench import results
from sgbench.cli import app
from sgbench.data.scenes import TASKS, caption_vocabulary
from sgbench.evaluation.geneval.prompts import PROMPTS_FILE, load_prompts
from sgbench.models import Route, SiT, preset
from sgbench.models.checkpoint import save_model
from sgbench.text.encoder import TextConfig
from sgbench.runs.rundir import RunDir
from test_cli import one_line_error
from test_geneval import read_only_folder

runner = CliRunner()
TEXT = TextConfig("embedded", width=16, heads=2, max_length=16, vocabulary=tuple(caption_vocabulary()))
TINY = preset("Tiny-test", input_size=48, patch_size=12, in_channels=3, num_classes=0, routes=(Route(1, 2, 0.5),), text=TEXT,
              name="scenes-tiny")


@pytest.fixture(scope="module")
def sampled(tmp_path_factory) -> tuple[Path, Path, Path]:
    """A tiny text run on two prompts of each GenEval task (2 images each), and its prompts file."""
    root = tmp_path_factory.mktemp("t2i")
    torch.manual_seed(0)
    save_model(SiT(TINY), root / "model.safetensors")
    by_task = {t: [r for r in load_prompts() if r["tag"] == t][:2] for t in TASKS}
    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(r) + "\n" for t in TASKS for r in by_task[t]))
    run = root / "run"
    result = runner.invoke(app, ["sample", "-c", str(root / "model.safetensors"), "--prompts", str(prompts),
                                 "--images-per-prompt", "2", "--steps", "2", "-g", "cfg", "--scale", "2", "-o", str(run)])
    assert result.exit_code == 0, result.output
    return root, prompts, run


def genevals_results(prompts: Path, correct=lambda i: True) -> list[dict]:
    """The real GenEval's results for the sampled run's exported images, as evaluate_images.py writes
    them: one per image OUT/<prompt index>/samples/<k>.png, judged against that prompt's metadata."""
    records = [json.loads(line) for line in prompts.read_text().splitlines()]
    return [{"filename": f"geneval_out/{p:05d}/samples/{k:04d}.png", "tag": r["tag"], "prompt": r["prompt"],
             "correct": correct(2 * p + k), "reason": "", "metadata": json.dumps(r), "details": "{}"}
            for p, r in enumerate(records) for k in range(2)]


def write_results(path: Path, results: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in results))
    return path


def test_eval_geneval_writes_results_and_task_scores_with_intervals(sampled):
    _, _, run = sampled
    result = runner.invoke(app, ["eval", "geneval", str(run), "--bootstrap", "50"])
    assert result.exit_code == 0, result.output
    lines = (run / "geneval" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 24 and {json.loads(line)["tag"] for line in lines} == set(TASKS)
    records = {r.metric: r for r in RunDir(run).metrics()}
    assert set(records) == {"geneval"} | {f"geneval/{t}" for t in TASKS}
    assert all(r.extractor == "geneval-animal" and r.reference.endswith("prompts.jsonl") for r in records.values())
    overall = records["geneval"]
    assert overall.value == pytest.approx(np.mean([records[f"geneval/{t}"].value for t in TASKS]))
    assert overall.ci95[0] <= overall.value <= overall.ci95[1]


def test_eval_geneval_judges_with_the_classifier_of_the_models_scene_objects(sampled, tmp_path, monkeypatch):
    """By default the miniature's style's classifier (glyphs) judges; --objects silhouettes, for models trained
    on silhouette scenes, the silhouette one. The records carry the judging weights' sha256."""
    import shutil

    from sgbench.evaluation.geneval import detect
    from sgbench.utils.files import sha256_file

    _, _, run = sampled
    loaded, load = [], detect.load_object_classifier
    monkeypatch.setattr(detect, "load_object_classifier", lambda path=detect.DEFAULT_WEIGHTS: loaded.append(Path(path)) or load(path))
    for objects, weights in ((None, detect.GLYPH_WEIGHTS), ("silhouettes", detect.SILHOUETTE_WEIGHTS), ("glyphs", detect.GLYPH_WEIGHTS)):
        judged = tmp_path / (objects or "default")
        shutil.copytree(run, judged)
        result = runner.invoke(app, ["eval", "geneval", str(judged), "--bootstrap", "0", *(["--objects", objects] if objects else [])])
        assert result.exit_code == 0, result.output
        assert loaded[-1] == weights
        assert {r.weights_sha256 for r in RunDir(judged).metrics() if r.extractor == "geneval-animal"} == {sha256_file(weights)}
    one_line_error(runner.invoke(app, ["eval", "geneval", str(run), "--objects", "blobs"]),
                   "Expected the scenes' objects to be one of silhouettes, glyphs but got 'blobs'")


def test_export_and_ingest_the_real_genevals_files(sampled, tmp_path):
    root, prompts, run = sampled
    out = tmp_path / "layout"
    assert runner.invoke(app, ["export", "geneval", str(run), str(out), "--metadata", str(prompts)]).exit_code == 0
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [f"{p:05d}" for p in range(12)]
    assert json.loads((out / "00003" / "metadata.jsonl").read_text()) == [json.loads(line) for line in prompts.read_text().splitlines()][3]
    assert sorted(p.name for p in (out / "00003" / "samples").iterdir()) == ["0000.png", "0001.png"]
    r = runner.invoke(app, ["export", "geneval", str(run), str(tmp_path / "other"), "--metadata", str(PROMPTS_FILE)])
    assert r.exit_code == 2 and "was sampled from other prompts than" in r.output

    # a hand-made results file: the first 16 images correct, the rest not; in another order than the
    # images', as the evaluator lists folders in os.listdir order
    tags = [json.loads(line)["tag"] for line in prompts.read_text().splitlines() for _ in range(2)]
    made = write_results(tmp_path / "results.jsonl", genevals_results(prompts, correct=lambda i: i < 16)[::-1])
    r = runner.invoke(app, ["ingest", "geneval", str(made), str(run)])
    assert r.exit_code == 0, r.output
    real = {r.metric: r.value for r in RunDir(run).metrics() if r.extractor == "geneval"}
    expected = {t: np.mean([i < 16 for i, tag in enumerate(tags) if tag == t]) for t in TASKS}
    assert real["geneval"] == pytest.approx(np.mean(list(expected.values())))  # GenEval's summary: mean of the tasks
    assert all(real[f"geneval/{t}"] == pytest.approx(v) for t, v in expected.items())


def test_negative_bootstrap_is_refused_before_scoring(sampled, tmp_path):
    _, prompts, run = sampled
    one_line_error(runner.invoke(app, ["eval", "geneval", str(run), "--bootstrap", "-5"]),
                   "Expected --bootstrap >= 0 (0: no intervals) but got -5")
    made = write_results(tmp_path / "results.jsonl", genevals_results(prompts))
    one_line_error(runner.invoke(app, ["ingest", "geneval", str(made), str(run), "--bootstrap", "-2"]),
                   "Expected --bootstrap >= 0 (0: no intervals) but got -2")


def test_ingest_refuses_a_results_file_that_is_not_utf8(sampled, tmp_path):
    _, prompts, run = sampled
    made = tmp_path / "results.jsonl"
    made.write_bytes(b"\xff\xfe" + write_results(tmp_path / "ok.jsonl", genevals_results(prompts)).read_bytes())
    one_line_error(runner.invoke(app, ["ingest", "geneval", str(made), str(run)]),
                   f"{made} is not UTF-8 text (byte 0xff at offset 0)", "GenEval's results.jsonl")


def test_export_geneval_into_a_file_or_an_unwritable_place_says_so(sampled, tmp_path):
    _, _, run = sampled
    (tmp_path / "empty").write_bytes(b"")
    one_line_error(runner.invoke(app, ["export", "geneval", str(run), str(tmp_path / "empty")]),
                   f"Expected a new or empty folder for the GenEval layout but {tmp_path / 'empty'} is a file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    one_line_error(runner.invoke(app, ["export", "geneval", str(run), str(tmp_path / "full")]),
                   f"but {tmp_path / 'full'} is a folder that is not empty")
    unwritable = tmp_path / "empty" / "out"  # under a file: no one (not even root) can create it
    one_line_error(runner.invoke(app, ["export", "geneval", str(run), str(unwritable)]),
                   f"Cannot write the GenEval layout into {unwritable}: Not a directory")


def test_export_geneval_into_a_read_only_folder_names_the_path(sampled, tmp_path):
    _, _, run = sampled
    out = read_only_folder(tmp_path / "ro") / "layout"
    one_line_error(runner.invoke(app, ["export", "geneval", str(run), str(out)]),
                   f"Cannot write the GenEval layout into {out}: Permission denied")


def _other_prompt(results):
    toaster = {"tag": "single_object", "include": [{"class": "toaster", "count": 1}], "prompt": "a photo of a toaster"}
    return [{**r, "tag": toaster["tag"], "prompt": toaster["prompt"], "metadata": json.dumps(toaster)} for r in results]


RESULTS_NOT_OF_THE_RUN = {  # how results can fail to be the run's -> what the one line says
    "unknown tags": (lambda rs: [{**r, "tag": "toasters"} for r in rs],
                     "Expected one of GenEval's tags (single_object, two_object, counting, colors, position, color_attr) "
                     "on line 1 of {made} but got 'toasters'"),
    "a prompt folder the run does not have": (
        lambda rs: rs[:-1] + [{**rs[-1], "filename": "geneval_out/00012/samples/0001.png"}],
        "but line 24 of {made} (geneval_out/00012/samples/0001.png) names image 1 of prompt 12, which it does not have"),
    "a sample the run does not have": (
        lambda rs: rs[:-1] + [{**rs[-1], "filename": "geneval_out/00011/samples/0002.png"}],
        "(prompt folders 00000 to 00011, samples 0 to 1) but line 24 of {made} (geneval_out/00011/samples/0002.png) names "
        "image 2 of prompt 11"),
    "not GenEval's file names": (lambda rs: [{**r, "filename": f"{i}.png"} for i, r in enumerate(rs)],
                                 "Expected a 'filename' OUT/<prompt index>/samples/<n>.png (GenEval's layout) on line 1 of "
                                 "{made} but got '0.png'"),
    "other prompts": (_other_prompt, "Expected line 1 of {made} (geneval_out/00000/samples/0000.png) to be judged against "
                                     "prompt 0 of {run}, '{prompt0}' (single_object), but it was against 'a photo of a "
                                     "toaster' (single_object)"),
    "other metadata": (lambda rs: [{**rs[0], "metadata": json.dumps({**json.loads(rs[0]["metadata"]), "include": []})}, *rs[1:]],
                       "Expected the 'metadata' of line 1 of {made} (geneval_out/00000/samples/0000.png) to be prompt 0 of {run}"),
    "a duplicate": (lambda rs: [rs[0], rs[0], *rs[2:]],
                    "Expected each image of {run} once but line 2 of {made} (geneval_out/00000/samples/0000.png) is image 0 "
                    "of prompt 0 again (first on line 1)"),
    "incomplete": (lambda rs: rs[:-1], "Expected a result for each of the 24 images of {run} but {made} has none for 1 of "
                                       "them (first: image 1 of prompt 11, 00011/samples/0001.png)"),
}


@pytest.mark.parametrize("case", RESULTS_NOT_OF_THE_RUN)
def test_ingest_takes_only_results_of_every_image_of_the_run_against_its_own_prompt(sampled, tmp_path, case):
    _, prompts, run = sampled
    change, message = RESULTS_NOT_OF_THE_RUN[case]
    made = write_results(tmp_path / "results.jsonl", change(genevals_results(prompts)))
    before = (run / "metrics.json").read_bytes() if (run / "metrics.json").exists() else None
    prompt0 = json.loads(prompts.read_text().splitlines()[0])["prompt"]
    one_line_error(runner.invoke(app, ["ingest", "geneval", str(made), str(run)]),
                   message.format(made=made, run=run, prompt0=prompt0))
    assert ((run / "metrics.json").read_bytes() if (run / "metrics.json").exists() else None) == before  # nothing written


def test_geneval_refuses_class_runs_and_changed_prompts(sampled, tmp_path):
    root, prompts, run = sampled
    class_run = tmp_path / "class"
    save_model(SiT(preset("Tiny-test")), tmp_path / "c.safetensors")
    assert runner.invoke(app, ["sample", "-c", str(tmp_path / "c.safetensors"), "-n", "2", "--steps", "1", "-o", str(class_run)]).exit_code == 0
    r = runner.invoke(app, ["eval", "geneval", str(class_run)])
    assert r.exit_code == 2 and "is a class-conditional run" in r.output


def test_clip_score_of_a_text_run_uses_its_prompts(sampled, tmp_path):
    import open_clip

    _, _, run = sampled
    config = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "sgbench-tiny-clip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "sgbench-tiny-clip.json")
    torch.save(open_clip.create_model("sgbench-tiny-clip", pretrained=None).state_dict(), tmp_path / "tiny.pt")
    r = runner.invoke(app, ["eval", "clip", str(run), "--model", "sgbench-tiny-clip", "--weights", str(tmp_path / "tiny.pt")])
    assert r.exit_code == 0, r.output
    (clip,) = [m for m in RunDir(run).metrics() if m.metric == "clip_score"]
    assert clip.num_samples == 24 and clip.ci95[0] <= clip.value <= clip.ci95[1]


def test_compare_keeps_text_runs_in_their_own_table(sampled, tmp_path):
    root, prompts, run = sampled
    assert runner.invoke(app, ["eval", "geneval", str(run), "--bootstrap", "20"]).exit_code == 0
    from test_results import make_run

    make_run(tmp_path / "runs", "cfg", method="cfg", fd=12.0, ci=1.0)
    r = runner.invoke(app, ["compare", str(run), str(tmp_path / "runs"), "-f", "markdown", "--reference", "paper"], env={"COLUMNS": "300"})
    assert r.exit_code == 0, r.output
    class_part, t2i_part = r.output.split("**Text-to-image")
    assert "FD against" in class_part and "cfg w=1.5" in class_part and "GenEval" not in class_part.split("Paper")[0]
    header = next(line for line in t2i_part.splitlines() if line.startswith("|  | tier"))
    assert "GenEval" in header and "FD" not in header and "cfg w=2" in t2i_part
    assert "Table 5" in t2i_part and "Table 2" in class_part  # the paper's GenEval table beside text runs
    loaded = results.load_runs([run, tmp_path / "runs"])
    assert results.kinds(loaded) == ["class", "t2i"]
    (t2i,) = results.leaderboard(loaded, kind="t2i").rows
    assert t2i.pareto and t2i.mean["geneval"] is not None and t2i.mean["fd"] is None


def test_a_text_bench_samples_a_stratified_subset_and_ranks_on_geneval(sampled, tmp_path):
    import yaml

    root, _, _ = sampled
    recipe = {
        "name": "t2i-tiny",
        "backbones": {"tiny": {"checkpoint": str(root / "model.safetensors")}},
        "configs": [{"label": "unguided", "guidance": "unguided"}, {"label": "CFG+SG", "guidance": "cfg+sg", "gs": 0.2, "gw": 0.7, "scale": 2.5}],
        "sampling": {"steps": 2, "batch_size": 64, "prompts": str(PROMPTS_FILE), "images_per_prompt": 1, "prompts_per_task": 1},
        "quick": {"configs": ["CFG+SG"], "prompts_per_task": 1},
        "full": {"images_per_prompt": 1, "prompts_per_task": 2},
        "out": str(tmp_path / "bench"),
    }
    (tmp_path / "t2i.yaml").write_text(yaml.safe_dump(recipe))
    r = runner.invoke(app, ["bench", str(tmp_path / "t2i.yaml"), "-f", "json"])
    assert r.exit_code == 0, r.output
    board = json.loads((tmp_path / "bench" / "full" / "leaderboard.json").read_text())
    assert [row["kind"] for row in board["rows"]] == ["t2i", "t2i"] and all(row["geneval"] is not None for row in board["rows"])
    subset = (tmp_path / "bench" / "full" / "prompts-1-per-task.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["tag"] for line in subset) == sorted(TASKS)  # one prompt of each task
    assert RunDir(tmp_path / "bench" / "full" / "tiny" / "CFG_SG").info().num_samples == 6
    r = runner.invoke(app, ["bench", str(tmp_path / "t2i.yaml"), "--full", "-f", "json"])
    assert r.exit_code == 0 and RunDir(tmp_path / "bench" / "protocol" / "tiny" / "CFG_SG").info().num_samples == 12
    again = runner.invoke(app, ["bench", str(tmp_path / "t2i.yaml")])
    assert again.exit_code == 0 and again.output.count("done already, kept") == 2


def test_text_runs_pair_on_genevals_per_image_verdicts_within_tasks(sampled, tmp_path):
    """Two runs of the same prompts and seed pair image by image: the paired GenEval difference is the
    difference of the scores, its interval (draws within tasks, shared by both runs) narrower than either
    run's own; a run of another seed is named as unpaired, never compared."""
    import shutil

    from sgbench.results.compare import compare_runs

    root, prompts, run = sampled
    runs = tmp_path / "runs"
    for name, extra in (("unguided", ["-g", "unguided"]), ("icg", ["-g", "icg", "--seed", "1"])):
        r = runner.invoke(app, ["sample", "-c", str(root / "model.safetensors"), "--prompts", str(prompts),
                                "--images-per-prompt", "2", "--steps", "2", *extra, "-o", str(runs / name)])
        assert r.exit_code == 0, r.output
    shutil.copytree(run, runs / "cfg")
    # cfg gets three of every task's four images right; unguided the same but task 4's (images 16-19) all
    # wrong; icg (seed 1) images 0-11 only
    for name, correct in (("cfg", lambda i: i % 4 != 3), ("unguided", lambda i: i % 4 != 3 and not 16 <= i < 20),
                          ("icg", lambda i: i < 12)):
        made = write_results(tmp_path / f"{name}.jsonl", genevals_results(prompts, correct=correct))
        assert runner.invoke(app, ["ingest", "geneval", str(made), str(runs / name), "--bootstrap", "200"]).exit_code == 0
    result = compare_runs([runs], fmt="json")
    body = json.loads(result.text)
    rows = {r["method"]: r for r in body["rows"]}
    best, worse = rows["cfg"], rows["unguided"]
    assert best["paired"]["against"] == best["config"] and worse["paired"]["metric"] == "geneval"
    assert worse["paired"]["delta"] == pytest.approx(worse["geneval"] - best["geneval"], abs=1e-12) and worse["paired"]["delta"] < 0
    width = worse["paired"]["hi"] - worse["paired"]["lo"]
    assert worse["paired"]["hi"] < 0 and width < min(r["geneval_hi"] - r["geneval_lo"] for r in (best, worse))
    assert rows["icg"]["paired"] is None and len(result.notes) == 1 and "differ in 'seed'" in result.notes[0]
    table = compare_runs([runs], fmt="markdown").text
    assert "ΔGenEval paired" in table and "reference" in table
