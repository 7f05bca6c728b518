import os

import pytest
import torch

# Tests run on 2 CPU cores with pytest-xdist: one thread per worker keeps them from fighting.
torch.set_num_threads(1)
os.environ.setdefault("SGBENCH_NO_PROGRESS", "1")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_addoption(parser):
    parser.addoption("--regen-golden", action="store_true", help="rewrite tests/golden/*.json from the current code")
