"""Run directories (`rundir`: identity, run.json, atomic shards, metrics bound to the samples) and the
image grids written beside them (`grid`)."""
