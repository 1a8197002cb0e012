import pytest
import torch


@pytest.fixture(autouse=True)
def _threads_and_seed():
    torch.manual_seed(0)
    yield
