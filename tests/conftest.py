import pytest

from mlp_lib import load_mnist


@pytest.fixture(scope="session")
def mnist_train():
    return load_mnist("train")


@pytest.fixture(scope="session")
def mnist_test():
    return load_mnist("test")
