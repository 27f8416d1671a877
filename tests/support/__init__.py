"""Test harnesses shared by several suites (real servers the tests start and stop themselves)."""

import pytest

# Test modules import these helpers before pytest registers them as plugins (`pytest_plugins`): have pytest
# rewrite their asserts on that first import rather than warn that it could not.
pytest.register_assert_rewrite("tests.support.clamd")
