"""params.yaml loading: types are checked once, and a YAML 1.1 quirk does not reject a number."""
import pytest

from tasks.core import config
from tests.helpers import REPO


@pytest.mark.parametrize("written, value", [("1e-4", 1e-4), ("2E-05", 2e-5), ("0.002", 0.002), ("3", 3)])
def test_float_params_accept_exponents_without_a_dot(tmp_path, written, value):
    # PyYAML reads `1e-4` as the string '1e-4'; `dvc exp run -S train.learning_rate=1e-05` writes exactly that
    text = (REPO / "params.yaml").read_text().replace("  learning_rate: 0.002", f"  learning_rate: {written}")
    (tmp_path / "params.yaml").write_text(text)
    assert config.load(tmp_path / "params.yaml").train.learning_rate == pytest.approx(value)


def test_a_float_param_that_is_not_a_number_is_named(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("  learning_rate: 0.002", "  learning_rate: fast")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(config.ConfigError, match="`params.train.learning_rate`: input should be a valid num.*'fast'"):
        config.load(tmp_path / "params.yaml")
