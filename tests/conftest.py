"""Shared test settings: one torch thread per test module."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The machine is shared: one intra-op thread avoids oversubscription stalls."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
