"""Commands that score runs and manage what scoring needs: `eval`, `stats`, `geneval`, and GenEval's
round trip through the real evaluator (`export geneval`, `ingest geneval`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sgbench.cli import OUT_IS_A_FOLDER, Checkpoint, Device, Extractor, Ref, Weights, app, renamed
from sgbench.cli.models import export_app
from sgbench.data.scenes import DEFAULT_CANVAS, DEFAULT_LAYOUT, DEFAULT_OBJECTS, DEFAULT_SPRITE  # the miniature's style
from sgbench.utils.errors import SgbenchError


eval_app = typer.Typer(
    help="Evaluate runs: `sgbench eval fid`, `lpips`, `clip`; `train-classifier` rebuilds the `animal` extractor.",
    no_args_is_help=True, rich_markup_mode="markdown",
)
stats_app = typer.Typer(
    help="Reference statistics: `sgbench stats build`, `import-adm`, `list`.", no_args_is_help=True, rich_markup_mode="markdown",
)
app.add_typer(eval_app, name="eval")
app.add_typer(stats_app, name="stats")


@eval_app.command(
    "fid",
    epilog="""Examples:

    sgbench eval fid runs/animal/sg --ref animal-all

    sgbench eval fid samples.npz --ref VIRTUAL_imagenet256 -e inception --weights weights-inception-2015-12-05-6726825d.pth --kid
""",
)
def eval_fid(
    samples: Annotated[Path, typer.Argument(help="Run directory (with samples.npz) or an ADM npz (arr_0 uint8 NHWC)")],
    ref: Ref,
    extractor: Extractor = "animal",
    weights: Weights = None,
    kid: Annotated[bool, typer.Option("--kid", help="Also compute KID (polynomial kernel, 100 subsets)")] = False,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Images per batch (does not change results)")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates for the 95% intervals (0: none; Inception at 50k: minutes per 100)")] = 200,
) -> None:
    """FID (FD in non-Inception features), sFID (inception), IS, precision and recall (k = 3, ADM's), optional
    KID, and class accuracy (animal), each with a 95% bootstrap interval.

    Streams the samples in batches; a run directory gets **metrics.json** (each metric with its
    extractor, weights sha256, reference, sample count and the sha256 of the samples it scored); a
    rerun on the same samples with the same extractor, reference and options reuses it.
    """
    from sgbench.evaluation import evaluate
    from sgbench.results.render import metrics_table

    result = evaluate(samples, ref, extractor, weights=weights, kid=kid, batch_size=batch_size, bootstrap_replicates=bootstrap)
    typer.echo(metrics_table(result), nl=False)
    if result["reused"]:
        typer.echo(f"Not recomputed: {samples}/metrics.json holds these metrics of these samples (same extractor, reference, options)", err=True)


@eval_app.command(
    "probe",
    epilog="""Examples:

    sgbench eval probe -c sgbench/assets/animal-scenes-routed.safetensors

    sgbench eval probe -c runs/train/animal-scenes-routed/snapshots/ema-step1200.safetensors --scenes 100 -f json

    sgbench eval probe -c sgbench/assets/animal-scenes-routed.safetensors --t 0,0.05,0.1,0.3,0.7   # per noise level

Training logs the same probe with `train.probe_every: N` (text recipes), into train_log.jsonl.
""",
)
def eval_probe(
    checkpoint: Checkpoint,
    scenes: Annotated[int, typer.Option("--scenes", help="Held-out scenes per attribute")] = 300,
    sprite: Annotated[int, typer.Option("--sprite", help="The scenes' object size in px, as the model was trained (data.sprite)")] = DEFAULT_SPRITE,
    objects: Annotated[str, typer.Option("--objects", help="How the scenes draw objects, as the model was trained (data.objects): silhouettes or glyphs")] = DEFAULT_OBJECTS,
    layout: Annotated[str, typer.Option("--layout", help="Where the scenes put objects, as the model was trained (data.layout): free or grid")] = DEFAULT_LAYOUT,
    times: Annotated[str | None, typer.Option("--t", help="Comma-separated fixed times in [0, 1) (0 = pure noise), one column each, instead of t uniform in [0.1, 0.9]")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """Does a text model use each attribute of its caption? The attribute-swap probe: for held-out scenes, how
    often the true caption gives a lower denoising error than the caption with one attribute changed (class,
    second class, colour, one vs two, count, colour binding, relation)."""
    import json

    from sgbench.evaluation.probe import attribute_probe
    from sgbench.models.checkpoint import load_model
    from sgbench.results.render import probe_table, probe_time_table

    if fmt not in ("table", "json"):
        raise SgbenchError(f"Expected --format table or json but got '{fmt}'")
    if scenes < 1:
        raise SgbenchError(f"Expected --scenes >= 1 but got {scenes}")
    from sgbench.data.scenes import check_style

    check_style(objects, layout)
    model = load_model(checkpoint)
    if times is not None:
        try:
            ts = [float(v) for v in times.split(",")]
        except ValueError:
            raise SgbenchError(f"Expected --t as comma-separated numbers in [0, 1), e.g. 0,0.05,0.3, but got '{times}'") from None
        if not all(0.0 <= v < 1.0 for v in ts):
            raise SgbenchError(f"Expected --t values in [0, 1) (0 = pure noise) but got '{times}'")
        by_t = {v: attribute_probe(model, scenes=scenes, sprite=sprite, objects=objects, layout=layout, t=v) for v in ts}
        typer.echo(json.dumps({str(v): s for v, s in by_t.items()}, indent=2) if fmt == "json"
                   else probe_time_table(by_t, title=f"Attribute probe by noise level ({checkpoint.name})", scenes=scenes), nl=fmt == "json")
        return
    scores = attribute_probe(model, scenes=scenes, sprite=sprite, objects=objects, layout=layout)
    typer.echo(json.dumps(scores, indent=2) if fmt == "json" else probe_table(scores, title=f"Attribute probe ({checkpoint.name})", scenes=scenes),
               nl=fmt == "json")


@eval_app.command(
    "lpips",
    epilog="""Examples:

    sgbench eval lpips runs/imagenet/sg --against runs/imagenet/cond --trunk-weights alexnet-owt-7be5be79.pth
""",
)
def eval_lpips(
    samples: Annotated[Path, typer.Argument(help="Run directory or npz (e.g. the guided run)")],
    against: Annotated[Path, typer.Option("--against", help="Run directory or npz with the paired samples (same seeds, same order)")],
    net: Annotated[str, typer.Option(help="LPIPS trunk: alex or vgg")] = "alex",
    trunk_weights: Annotated[Optional[Path], typer.Option(help="torchvision trunk weights (else $SGBENCH_LPIPS_TRUNK, else the torch hub cache)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Pairs per batch")] = 64,
) -> None:
    """Mean LPIPS between sample i of two runs (the SG paper's Fig. 7 left); recorded in the run's metrics.json."""
    from sgbench.evaluation.lpips_score import evaluate_lpips

    out = evaluate_lpips(samples, against, net=net, trunk_weights=trunk_weights, batch_size=batch_size)
    typer.echo(f"LPIPS ({net}) over {out['num_pairs']} pairs: {out['lpips']:.4f}")


@eval_app.command(
    "clip",
    epilog="""Examples:

    sgbench eval clip runs/t2i/cfg --model ViT-L-14 --weights open_clip_pytorch_model.bin      # a text run: its own prompts

    sgbench eval clip samples.npz --prompts prompts.txt --weights open_clip_pytorch_model.bin  # an npz: one prompt per sample
""",
)
def eval_clip(
    samples: Annotated[Path, typer.Argument(help="A text run directory, or an npz with --prompts")],
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="For an npz: a text file, one prompt per sample in order")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", help="Local open_clip weights file")] = None,
    model: Annotated[str, typer.Option(help="open_clip model name")] = "ViT-B-32",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per batch")] = 32,
) -> None:
    """CLIP score (100 x cosine, clipped at 0) of each image against its prompt, through open_clip with local
    weights; a run directory gets it (with a 95% interval) in its metrics.json."""
    from sgbench.evaluation.clip_score import clip_score
    from sgbench.evaluation.t2i import evaluate_clip_run

    if samples.is_dir():
        out = evaluate_clip_run(samples, model_name=model, weights=weights, batch_size=batch_size)
    else:
        if prompts is None or not prompts.is_file():
            raise SgbenchError(f"Expected --prompts FILE (one prompt per sample) for the npz {samples}, or a text run directory")
        out = clip_score(samples, prompts.read_text().splitlines(), model_name=model, weights=weights, batch_size=batch_size)
    typer.echo(f"CLIP score ({model}) over {out['num_samples']} samples: {out['clip_score']:.3f}")


@eval_app.command(
    "geneval",
    epilog="""Example:

    sgbench sample -c sgbench/assets/animal-scenes-routed.safetensors --prompts sgbench/data/geneval_animal/evaluation_metadata.jsonl --images-per-prompt 4 -g cfg --scale 2.5 -o runs/t2i/cfg

    sgbench eval geneval runs/t2i/cfg

    sgbench eval geneval runs/t2i/old-model --objects silhouettes     # a model trained on silhouette scenes
""",
)
def eval_geneval(
    run: Annotated[Path, typer.Argument(help="A text run of Animal scenes, sampled from GenEval metadata")],
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates for the 95% intervals (0: none)")] = 200,
    objects: Annotated[str, typer.Option("--objects", help="How the model's training scenes drew objects (data.objects), which picks the shipped classifier that judges: silhouettes or glyphs")] = DEFAULT_OBJECTS,
) -> None:
    """The offline GenEval of the embedded Animal scenes: GenEval's rules over a detector of the canvas's
    objects, its class classifier (the one for --objects) and colour fit. Per-image results in GenEval's
    format go to RUN/geneval/results.jsonl, task scores and the overall (with 95% intervals) to
    metrics.json. For real images use `sgbench export geneval` and the real evaluator."""
    from sgbench.evaluation.geneval.run import evaluate_run
    from sgbench.results.render import geneval_table

    typer.echo(geneval_table({str(run): evaluate_run(run, objects=objects, replicates=bootstrap)}), nl=False)


@eval_app.command(
    "hpsv3",
    epilog="""Example (a GPU; the extra: pip install 'sgbench[hpsv3]'):

    sgbench eval hpsv3 runs/t2i/sg --weights HPSv3.safetensors --base-model Qwen2-VL-7B-Instruct --device cuda
""",
)
def eval_hpsv3(
    run: Annotated[Path, typer.Argument(help="A text run directory")],
    base_model: Annotated[Path, typer.Option("--base-model", help="Local Qwen2-VL-7B-Instruct directory")],
    weights: Annotated[Optional[Path], typer.Option("--weights", help="HPSv3's weights, HPSv3.safetensors (huggingface.co/MizzenAI/HPSv3; required)")] = None,
    device: Device = "cuda",
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per reward call")] = 16,
    checkpoint: Annotated[Optional[Path], typer.Option("--checkpoint", "-c", hidden=True, help="Deprecated spelling of --weights")] = None,
) -> None:
    """HPSv3 (human preference) of each image against its prompt, per prompt category when the prompts
    carry a `category`, overall as HPSv3's benchmark computes it (the mean of the category means)."""
    from sgbench.evaluation.t2i import evaluate_hpsv3_run

    weights = renamed(weights, checkpoint, command="eval hpsv3", new="--weights", old="-c/--checkpoint",
                      why="-c/--checkpoint names a model checkpoint in every other command")
    if weights is None:
        raise SgbenchError("Expected --weights HPSv3.safetensors: HPSv3's weights file (huggingface.co/MizzenAI/HPSv3, read locally)")
    scores = evaluate_hpsv3_run(run, checkpoint=weights, base_model=base_model, device=device, batch_size=batch_size)
    typer.echo(f"HPSv3 over {len(scores.mu)} images: {scores.overall:.3f}"
               + "".join(f"\n  {c}: {m:.3f}" for c, m in scores.category_means.items()))


@eval_app.command("train-classifier")
def eval_train_classifier(
    file: Annotated[Optional[Path], typer.Option("--file", help="Weights file to write (default: the shipped sgbench/assets/animal_classifier.safetensors)")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs over the 9,000 training images")] = 15,
    seed: Annotated[int, typer.Option(help="Training seed")] = 0,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", hidden=True, help="Deprecated spelling of --file")] = None,
) -> None:
    """Train the `animal` extractor's classifier on Animal-MNIST `train` and report top-1 on `test` (one CPU thread, a few minutes)."""
    from sgbench.evaluation.animal_classifier import DEFAULT_WEIGHTS
    from sgbench.evaluation.train_classifier import train_animal_classifier

    out = renamed(file, out, command="eval train-classifier", new="--file", old="-o/--out", why=OUT_IS_A_FOLDER)
    record = train_animal_classifier(out or DEFAULT_WEIGHTS, epochs=epochs, seed=seed)
    typer.echo(f"Wrote {out or DEFAULT_WEIGHTS}: test accuracy {record['test_accuracy']:.4f}, train {record['train_accuracy']:.4f}, "
               f"{record['train_seconds']:.0f} s")


@stats_app.command(
    "build",
    epilog="""Examples:

    sgbench stats build animal-all --from animal --extractor animal

    sgbench stats build animal-test --from animal:test

    sgbench stats build my-ref --from path/to/images/ --extractor inception
""",
)
def stats_build(
    name: Annotated[str, typer.Argument(help="Reference name (the manifest key and npz file name)")],
    source: Annotated[str, typer.Option("--from", help="animal, animal:SPLIT, a folder of images, or an npz with arr_0")],
    extractor: Extractor = "animal",
    weights: Weights = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if the reference exists")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per batch")] = 250,
) -> None:
    """Compute reference statistics (mu, sigma, spatial stats, feature rows for precision/recall) once; cached after."""
    from sgbench.evaluation.reference import build_reference, reference_dir

    entry, computed = build_reference(name, source, extractor=extractor, weights=weights, force=force, batch_size=batch_size)
    typer.echo(f"{'Built' if computed else 'Cached, not recomputed:'} {reference_dir() / entry.file} "
               f"({entry.num_images} images, {entry.resolution}px, {entry.extractor})")


@stats_app.command(
    "import-adm",
    epilog="""Examples:

    sgbench stats import-adm VIRTUAL_imagenet256_labeled.npz --weights weights-inception-2015-12-05-6726825d.pth
""",
)
def stats_import_adm(
    path: Annotated[Path, typer.Argument(help="ADM reference batch (arr_0, mu, sigma, mu_s, sigma_s)")],
    name: Annotated[Optional[str], typer.Option(help="Reference name (default: file stem without _labeled)")] = None,
    weights: Weights = None,
    force: Annotated[bool, typer.Option(help="Import again even if the reference exists")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Images per batch")] = 100,
) -> None:
    """Import the ADM suite's reference statistics, plus Inception features of its images for precision/recall."""
    from sgbench.evaluation.reference import import_adm, reference_dir

    entry, computed = import_adm(path, name=name, weights=weights, force=force, batch_size=batch_size)
    typer.echo(f"{'Imported' if computed else 'Cached, not recomputed:'} {reference_dir() / entry.file}. {entry.notes}")


@stats_app.command("list")
def stats_list() -> None:
    """Every reference known here: shipped, built into $SGBENCH_REFERENCE_STATS or the user's cache."""
    from sgbench.evaluation.reference import locate
    from sgbench.results.render import rich_text, table

    rows = [[e.name, e.extractor, str(e.num_images), str(e.resolution), e.source, e.weights_sha256[:12], str(root)]
            for e, root in locate().values()]
    typer.echo(rich_text(table("Reference statistics", ["name", "extractor", "images", "px", "source", "weights sha256", "folder"],
                               rows, left=7)), nl=False)


geneval_app = typer.Typer(help="The embedded GenEval: `sgbench geneval prompts`, `validate`, `train-classifier`.",
                          no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(geneval_app, name="geneval")


@geneval_app.command("prompts", epilog="Example:\n\n    sgbench geneval prompts --seed 43 --file my_prompts.jsonl\n")
def geneval_prompts(
    file: Annotated[Optional[Path], typer.Option("--file", help="Where to write evaluation_metadata.jsonl (required)")] = None,
    seed: Annotated[int, typer.Option("--seed", help="GenEval's generator seed (the shipped set: 43)")] = 43,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", hidden=True, help="Deprecated spelling of --file")] = None,
) -> None:
    """GenEval's prompt generator (its six tasks, counts, colours, relations and proportions) over the ten
    Animal-MNIST classes, as GenEval's evaluation_metadata.jsonl."""
    from sgbench.evaluation.geneval.prompts import write_prompts

    out = renamed(file, out, command="geneval prompts", new="--file", old="-o/--out", why=OUT_IS_A_FOLDER)
    if out is None:
        raise SgbenchError("Expected --file FILE: where to write the prompts (e.g. --file my_prompts.jsonl)")
    typer.echo(f"Wrote {len(write_prompts(out, seed))} prompts to {out}")


@geneval_app.command("validate", epilog="Examples:\n\n    sgbench geneval validate --seed 0\n\n"
                                         "    sgbench geneval validate --seed 0 --objects silhouettes --layout free --sprite 16\n")
def geneval_validate(
    seed: Annotated[int, typer.Option("--seed", help="Seed of the ground-truth scenes and of the shuffle")] = 0,
    images_per_prompt: Annotated[int, typer.Option("--images-per-prompt", help="Ground-truth images per prompt")] = 4,
    objects: Annotated[str, typer.Option("--objects", help="How the ground-truth scenes draw objects: silhouettes or glyphs")] = DEFAULT_OBJECTS,
    layout: Annotated[str, typer.Option("--layout", help="Where the ground-truth scenes put objects: free or grid")] = DEFAULT_LAYOUT,
    sprite: Annotated[int, typer.Option("--sprite", help="The scenes' object size in px")] = DEFAULT_SPRITE,
    canvas: Annotated[int, typer.Option("--canvas", help="The scenes' image side in px")] = DEFAULT_CANVAS,
    classifier: Annotated[Optional[Path], typer.Option("--classifier", help="Object classifier weights (default: the shipped one for --objects: sgbench/assets/scene_glyph_classifier.safetensors or scene_object_classifier.safetensors)")] = None,
) -> None:
    """Check the offline evaluator: ground-truth scenes of every embedded prompt (glyphs on the grid, or test
    silhouettes) should score near 1 on every task, and the same images judged against shuffled prompts far lower."""
    from sgbench.evaluation.geneval.detect import load_object_classifier
    from sgbench.evaluation.geneval.evaluate import validate_geneval, validation_table

    reports = validate_geneval(seed=seed, images_per_prompt=images_per_prompt, objects=objects, layout=layout,
                               sprite=sprite, canvas=canvas,
                               classifier=None if classifier is None else load_object_classifier(classifier))
    typer.echo(validation_table(reports))


@geneval_app.command("train-classifier")
def geneval_train_classifier(
    file: Annotated[Optional[Path], typer.Option("--file", help="Weights file to write (default: the shipped one for --objects: sgbench/assets/scene_glyph_classifier.safetensors or scene_object_classifier.safetensors)")] = None,
    seed: Annotated[int, typer.Option(help="Training seed")] = 0,
    workers: Annotated[int, typer.Option(help="Members trained side by side, one thread each (same weights)")] = 1,
    objects: Annotated[str, typer.Option("--objects", help="What the scenes draw: silhouettes or glyphs")] = DEFAULT_OBJECTS,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", hidden=True, help="Deprecated spelling of --file")] = None,
) -> None:
    """Train the offline GenEval's object classifier: by default the glyph one (two small nets on rendered
    glyphs, about 10 minutes in all); with --objects silhouettes, two nets on rendered `train` silhouettes,
    the temperature fit on held-out `train` silhouettes, each net about 35 minutes on one CPU thread."""
    from sgbench.data.scenes import check_style
    from sgbench.evaluation.geneval.detect import CLASSIFIER_WEIGHTS
    from sgbench.evaluation.geneval.train_classifier import train_scene_classifier

    out = renamed(file, out, command="geneval train-classifier", new="--file", old="-o/--out", why=OUT_IS_A_FOLDER)
    check_style(objects)
    out = out or CLASSIFIER_WEIGHTS[objects]
    record = train_scene_classifier(out, objects=objects, seed=seed, workers=workers)
    typer.echo(f"Wrote {out}: {record}")


# === GenEval's round trip: export geneval, ingest geneval ===========================================


@export_app.command(
    "geneval",
    epilog="""Example (then run GenEval's evaluation/evaluate_images.py on OUT, and `sgbench ingest geneval`):

    sgbench sample -c CKPT --prompts geneval/prompts/evaluation_metadata.jsonl --images-per-prompt 4 -g cfg --scale 2.5 -o runs/t2i/cfg

    sgbench export geneval runs/t2i/cfg geneval_out --metadata geneval/prompts/evaluation_metadata.jsonl
""",
)
def export_geneval(
    run: Annotated[Path, typer.Argument(help="A text run sampled from GenEval metadata (sample --prompts)")],
    out: Annotated[Path, typer.Argument(help="New or empty folder for GenEval's layout: OUT/<prompt>/metadata.jsonl, samples/<k>.png")],
    metadata: Annotated[Optional[Path], typer.Option("--metadata", help="GenEval's evaluation_metadata.jsonl: refuse a run sampled from other prompts")] = None,
) -> None:
    """A text run in GenEval's folder layout, for the real GenEval evaluator (Mask2Former + CLIP, on a GPU)."""
    from sgbench.evaluation.geneval.run import export_run

    typer.echo(f"Wrote {export_run(run, out, metadata=metadata)}")


ingest_app = typer.Typer(help="Bring other tools' results into a run: `sgbench ingest geneval`.", no_args_is_help=True,
                         rich_markup_mode="markdown")
app.add_typer(ingest_app, name="ingest")


@ingest_app.command(
    "geneval",
    epilog="""Example:

    sgbench ingest geneval geneval_out/results.jsonl runs/t2i/cfg
""",
)
def ingest_geneval(
    results: Annotated[Path, typer.Argument(help="GenEval's results.jsonl for the run's exported images")],
    run: Annotated[Optional[Path], typer.Argument(help="The run the images came from (`sgbench export geneval RUN OUT`)")] = None,
    bootstrap: Annotated[int, typer.Option("--bootstrap", help="Bootstrap replicates for the 95% intervals (0: none)")] = 200,
    run_option: Annotated[Optional[Path], typer.Option("--run", hidden=True, help="Deprecated spelling of the RUN argument")] = None,
) -> None:
    """The real GenEval's per-image results into the run's metrics.json (GenEval's summary: the mean of the
    tasks' scores), so `compare` shows them beside everything else."""
    from sgbench.evaluation.geneval.run import ingest_run
    from sgbench.results.render import geneval_table

    if run is not None and run_option is not None:
        raise SgbenchError(f"Expected the run once, as the argument after RESULTS, but got {run} and also --run {run_option}, "
                           "its deprecated spelling: drop --run")
    run = renamed(run, run_option, command="ingest geneval", new="RESULTS RUN", old="RESULTS --run RUN",
                  why="every command takes its run as an argument")
    if run is None:
        raise SgbenchError(f"Expected the run the images came from: sgbench ingest geneval {results} RUN")
    typer.echo(geneval_table({"GenEval (ingested)": ingest_run(results, run, replicates=bootstrap)}), nl=False)
