"""GenEval over images (sgbench.evaluation.metrics.geneval_images): the fraction of all images judged correct,
from the per-image results the offline judge stores, and its column on the text board."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sgbench import results
from sgbench.evaluation import bootstrap
from sgbench.evaluation.geneval.files import write_results_jsonl
from sgbench.evaluation.geneval.rules import summarize
from sgbench.evaluation.geneval.run import RESULTS_FILE, report_records
from sgbench.evaluation.metrics import REGISTRY, Scoring, bench_scorers, geneval, geneval_images
from sgbench.runs.rundir import MetricRecord, RunDir
from sgbench.utils.errors import SgbenchError
from test_results import make_run

PROMPTS = "geneval_animal/prompts.jsonl"  # the prompt set's name in metrics.json (prompt_set_name)
# 12 images of three tasks of unequal size: 2/2, 1/6 and 2/4 correct
JUDGED = [("single_object", True)] * 2 + [("counting", False)] * 5 + [("counting", True)] + [("colors", True), ("colors", False)] * 2


def text_run(root: Path, name: str = "run", judged=JUDGED) -> RunDir:
    """A text run judged by the offline GenEval: results.jsonl and its records, as `eval geneval` writes them."""
    run = RunDir(make_run(root, name, method="cfg", num=len(judged), metrics=False))
    info = run.info()
    info.conditioning = {"prompts": PROMPTS, "images_per_prompt": 1}
    run.write_info(info)
    verdicts = [{"filename": f"{i:05d}.png", "tag": tag, "prompt": "p", "correct": ok, "reason": "", "metadata": "{}"}
                for i, (tag, ok) in enumerate(judged)]
    write_results_jsonl(verdicts, run.path / RESULTS_FILE)
    run.write_metrics(report_records(summarize(verdicts), run, extractor=geneval.OFFLINE, reference=PROMPTS,
                                     weights_sha256="w", replicates=20))
    return run


def test_the_fraction_counts_images_not_tasks(tmp_path):
    run = text_run(tmp_path)
    record = geneval_images.score_run(run, replicates=30)
    correct = np.asarray([ok for _, ok in JUDGED], np.float64)
    assert record.value == pytest.approx(5 / 12) and record.value != pytest.approx(summarize(
        [{"tag": t, "correct": ok} for t, ok in JUDGED]).overall)  # (1 + 1/6 + 1/2) / 3 = 0.556
    means = [np.repeat(correct, c).mean() for c in bootstrap.counts(12, 30)]  # the images resampled
    assert record.ci95 == pytest.approx(bootstrap.percentile_interval(np.asarray(means)))
    assert (record.metric, record.extractor, record.reference, record.num_samples) == ("geneval_images", geneval.OFFLINE, PROMPTS, 12)
    assert record.samples_sha256 == run.samples_sha256() and record.weights_sha256 == "w"
    stored = [r for r in run.metrics() if r.metric == "geneval_images"]
    assert stored == [record]
    assert geneval_images.score_run(run, replicates=0).ci95 is None


def test_it_is_a_column_of_the_text_board_after_the_tasks(tmp_path):
    geneval_images.score_run(text_run(tmp_path / "runs"), replicates=30)
    make_run(tmp_path / "runs", "class", method="cfg")
    loaded = results.load_runs([tmp_path / "runs"])
    board = results.leaderboard(loaded, kind="t2i", sort="geneval_images")
    (row,) = board.rows
    assert row.mean["geneval_images"] == pytest.approx(5 / 12) and row.ci95["geneval_images"] is not None
    assert board.columns[:8] == ["geneval", "single_object", "counting", "colors", "geneval_images", "gflops_step",
                                 "gflops_step_run", "delta_gflops_step"]
    assert "| pooled |" in results.render(board, "markdown") and "sorted by pooled" in results.render(board, "markdown")
    assert json.loads(results.render(board, "json"))["columns"]["geneval_images"]["better"] == "higher"
    assert "geneval_images" not in results.leaderboard(loaded, kind="class").columns
    assert REGISTRY["geneval_images"].tolerance is None  # not gated: GenEval's overall is


def test_a_row_judged_by_the_real_evaluator_shows_none(tmp_path):
    run = text_run(tmp_path)
    geneval_images.score_run(run, replicates=0)
    run.write_metrics([MetricRecord("geneval", 0.6, geneval.REAL, PROMPTS, 12, run.samples_sha256())])  # ingested
    (record,) = results.load_runs([run.path]).records
    assert record.values["geneval"] == 0.6 and record.values["geneval_images"] is None


def test_the_bench_scores_it_after_the_offline_judge(tmp_path):
    assert bench_scorers("t2i") == [geneval.OFFLINE_JUDGE, geneval_images.POOLED]
    run = text_run(tmp_path)
    scoring = Scoring(extractor="animal", ref="animal-all", num_samples=12, prompts=f"/any/where/{PROMPTS}")
    assert not geneval_images.POOLED.is_scored(run, scoring)
    geneval_images.POOLED.score(run, scoring)
    assert geneval_images.POOLED.is_scored(run, scoring)


def test_it_needs_the_offline_judgements_of_these_samples(tmp_path):
    bare = RunDir(make_run(tmp_path, "bare", method="cfg", num=12, metrics=False))
    with pytest.raises(SgbenchError) as e:
        geneval_images.score_run(bare)
    assert str(e.value) == (f"Expected the offline GenEval of the samples in {bare.path} before its fraction of images judged "
                            f"correct, but metrics.json has none: sgbench eval geneval {bare.path}")
    run = text_run(tmp_path)
    lines = (run.path / RESULTS_FILE).read_text().splitlines()
    (run.path / RESULTS_FILE).write_text("\n".join(lines[:-1]) + "\n")  # one verdict fewer than the run's GenEval
    with pytest.raises(SgbenchError) as e:
        geneval_images.score_run(run)
    assert str(e.value) == (f"Expected {run.path / RESULTS_FILE} to hold the judgements of the run's GenEval (12 images, "
                            f"overall 0.5556) but it holds 11 that do not give it: re-evaluate with sgbench eval geneval {run.path}")
    (run.path / RESULTS_FILE).unlink()
    with pytest.raises(SgbenchError, match="Expected GenEval's results.jsonl at .* but there is no such file"):
        geneval_images.score_run(run)
