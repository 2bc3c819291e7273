import os

import pytest
import torch

# The whole suite runs the notebooks' quick mode.
os.environ.setdefault("COURSE_QUICK", "1")


@pytest.fixture
def one_torch_thread():
    """For tests of many tiny matrices: one thread is fastest, and no thread spins waiting on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
