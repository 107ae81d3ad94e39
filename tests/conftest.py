"""Shared pytest configuration."""

pytest_plugins = ["tests.fakegithub.conftest_plugin", "tests.statedb"]
