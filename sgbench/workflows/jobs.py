"""One unit of work of `bench` and `sweep`: a configuration sampled into its run directory, then evaluated
(class runs against reference statistics, text runs with the offline GenEval), keeping whatever is
already done (finished samples with the same identity, metrics on those samples).

Everything a job needs is checked by `check_jobs` before the first one runs, so a bad cell never
surfaces after an hour of sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.utils.errors import SgbenchError
from sgbench.evaluation.metrics import Scoring, bench_scorers
from sgbench.evaluation.reference import check_reference
from sgbench.runs.rundir import RunDir
from sgbench.sampling import SampleConfig, is_latent, resolve_decoder, sample_run

MIN_SAMPLES = 10  # the Inception Score's 10 splits


@dataclass(frozen=True)
class Evaluation:
    extractor: str = "animal"
    ref: str = "animal-all"


def check_jobs(configs: list[SampleConfig], evaluation: Evaluation) -> None:
    """Validate every configuration and the reference before anything runs. Text runs (prompts) are
    scored with GenEval, which needs prompts with GenEval metadata; class runs with `evaluation`."""
    from sgbench.evaluation.geneval.run import check_geneval_metadata
    from sgbench.models.checkpoint import read_metadata

    class_runs = [c for c in configs if c.prompts is None]
    entry = check_reference(evaluation.ref, evaluation.extractor) if class_runs else None
    for config in configs:  # each config's guidance method was built and checked when it was constructed
        prompts = config.validate()
        if prompts is not None:
            check_geneval_metadata(prompts.records, config.prompts)
        elif config.num < MIN_SAMPLES:
            raise SgbenchError(f"Expected at least {MIN_SAMPLES} samples per configuration (the Inception Score's splits) "
                               f"but {config.out} asks for {config.num}")
        for path in filter(None, (config.checkpoint, config.guide)):
            read_metadata(path)  # exists and is a readable sgbench checkpoint
        RunDir(config.out).is_finished(config.identity())  # refuses a finished run whose samples.npz changed, now
    if class_runs:  # evaluation compares the two (Reference.check_compatible); here before any sampling
        for config in class_runs:
            size = image_size(config)
            if size != entry.resolution:
                raise SgbenchError(f"Expected samples at the reference's resolution {entry.resolution}x{entry.resolution} but "
                                   f"{config.checkpoint} makes {size}x{size} images (reference '{entry.name}'); "
                                   f"choose a --ref built at {size}x{size}")


def image_size(config: SampleConfig) -> int:
    """The side of the images a configuration samples: the model's input size for a pixel model, times
    its VAE's upsampling for a latent one (read from the files; nothing is loaded)."""
    from sgbench.models.checkpoint import read_config
    from sgbench.models.vae import upsampling_factor

    model = read_config(config.checkpoint)
    if not is_latent(model):
        return model.input_size
    return model.input_size * upsampling_factor(resolve_decoder(config)["source"])


def sample_and_evaluate(config: SampleConfig, evaluation: Evaluation, *, progress: bool = True) -> str:
    """Sample the run unless it is finished, then run every scorer of its board's metrics (the metric
    registry's `bench_scorers`: class runs `eval fid`, text runs the offline GenEval) that has not scored
    these samples yet. Returns what happened: 'kept' (finished and scored already), 'evaluated' or 'sampled'."""
    run = RunDir(config.out)
    sampled = run.is_finished(config.identity())
    scoring = Scoring(extractor=evaluation.extractor, ref=evaluation.ref, num_samples=config.num, prompts=config.prompts)
    scorers = bench_scorers("class" if config.prompts is None else "t2i")
    todo = [s for s in scorers if not (sampled and s.is_scored(run, scoring))]
    if not todo:
        return "kept"
    if not sampled:
        sample_run(config, progress=progress)
    for scorer in todo:
        scorer.score(run, scoring)
    return "evaluated" if sampled else "sampled"
