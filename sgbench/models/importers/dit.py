"""facebookresearch/DiT: refused. DiT predicts noise on a discrete 1000-step VP schedule.

A faithful velocity in our convention would need (1) the timestep at any t, while DiT was trained on
1000 integer steps whose signal-to-noise ratios only span t in about [0.006, 0.99] (our samplers start
at t = 0), and (2) v = (x_t - eps) / t, which divides the noise prediction by t: undefined at t = 0 and
amplifying its error 40x at the second of 40 Euler steps. No weight mapping or preconditioning makes
that the model DiT trained. willisma/SiT-XL-2-256.pt is the same architecture trained as a velocity
model: import it with kind `sit`.
"""

REASON = (
    "DiT checkpoints predict noise on a discrete 1000-step VP schedule (defined for t in about "
    "[0.006, 0.99] only, and v = (x_t - eps) / t is undefined at t = 0): no faithful velocity model "
    "exists; import SiT-XL-2-256.pt (the same architecture trained as a velocity model) with kind 'sit'"
)
