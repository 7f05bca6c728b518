"""One unit of work of `bench` and `sweep`: a configuration sampled into its run directory, then evaluated,
keeping whatever is already done (finished samples with the same identity, metrics on those samples).

Everything a job needs is checked by `check_jobs` before the first one runs, so a bad cell never
surfaces after an hour of sampling.
"""

from __future__ import annotations

from dataclasses import dataclass

from sgbench.errors import SgbenchError
from sgbench.metrics.evaluate import evaluate
from sgbench.metrics.reference import check_reference, reference_name
from sgbench.rundir import RunDir
from sgbench.sampling import SampleConfig, sample_run

MIN_SAMPLES = 10  # the Inception Score's 10 splits


@dataclass(frozen=True)
class Evaluation:
    extractor: str = "animal"
    ref: str = "animal-all"


def check_jobs(configs: list[SampleConfig], evaluation: Evaluation) -> None:
    """Validate every configuration and the reference before anything runs."""
    from sgbench.guidance import build_guidance
    from sgbench.models.checkpoint import read_metadata

    check_reference(evaluation.ref, evaluation.extractor)
    for config in configs:
        config.validate()
        build_guidance(config.guidance, **config.guidance_params)
        if config.num < MIN_SAMPLES:
            raise SgbenchError(f"Expected at least {MIN_SAMPLES} samples per configuration (the Inception Score's splits) "
                               f"but {config.out} asks for {config.num}")
        for path in filter(None, (config.checkpoint, config.guide)):
            read_metadata(path)  # exists and is a readable sgbench checkpoint


def sample_and_evaluate(config: SampleConfig, evaluation: Evaluation, *, progress: bool = True) -> str:
    """Returns what happened: 'kept' (finished and evaluated already), 'evaluated' or 'sampled'."""
    run = RunDir(config.out)
    sampled = run.is_finished(config.identity())
    if sampled and run.has_metric("fid", evaluation.extractor, reference_name(evaluation.ref), config.num):
        return "kept"
    if not sampled:
        sample_run(config, progress=progress)
    evaluate(run.path, evaluation.ref, evaluation.extractor)
    return "evaluated" if sampled else "sampled"
