import pytest

from runtime_models import export_conv_net


@pytest.fixture(scope="session")
def conv_net(tmp_path_factory):
    """(path, w1, b1, w2) of a tiny torch conv net exported to ONNX once per session."""
    return export_conv_net(tmp_path_factory.mktemp("conv"))
