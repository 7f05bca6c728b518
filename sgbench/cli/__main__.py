"""`python -m sgbench.cli ...` (torchrun launches it this way): the same app as the `sgbench` command."""

from sgbench.cli import main

main()
