"""Sampling: a configuration (`config`), the solvers (`solvers`), decoding model outputs to images
(`decoding`), the run loop that fills a run directory (`run`), and preview grids (`previews`).

    from sgbench.sampling import SampleConfig, sample_run
    sample_run(SampleConfig(checkpoint="model.safetensors", out="runs/sg", guidance="sg", guidance_params={"gs": 0.5}))
"""

from sgbench.sampling.config import LABELS, PRECISIONS, SampleConfig, read_prompt_texts
from sgbench.sampling.decoding import DECODE_BATCH, decode_pixels, is_latent, make_decoder, resolve_decoder
from sgbench.sampling.run import Bf16Forwards, batches_to_run, class_conditioning, environment_info, generate, sample_run
from sgbench.sampling.solvers import SOLVERS, VelocityFn, check_solver, eval_times, integrate

__all__ = [
    "DECODE_BATCH", "LABELS", "PRECISIONS", "SOLVERS", "Bf16Forwards", "SampleConfig", "VelocityFn", "batches_to_run",
    "check_solver", "class_conditioning", "decode_pixels", "environment_info", "eval_times", "generate", "integrate",
    "is_latent", "make_decoder", "read_prompt_texts", "resolve_decoder", "sample_run",
]
