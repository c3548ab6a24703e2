"""The original's module, titan_sdk.titan_sdk, with its constants."""

from __future__ import annotations


def test_module_constants_come_from_the_environment_and_steer_the_client(run_original, cluster):
    code, output = run_original("module_constants.py")
    assert code == 0, output
    assert f"constants: {cluster.host}:{cluster.port} version 1" in output and "CONSTANTS OK" in output
