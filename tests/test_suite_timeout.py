"""The suite cannot hang: pytest-timeout is active with the limit pyproject.toml sets, and a
test that outlives it fails with pytest-timeout's message (in a child pytest)."""

import subprocess
import sys
import textwrap


def test_the_suite_has_a_time_limit(pytestconfig):
    assert pytestconfig.getini("timeout") == "1800"


def test_a_hung_test_fails_with_a_timeout(tmp_path):
    (tmp_path / "test_hang.py").write_text(textwrap.dedent("""
        import time

        def test_hangs():
            time.sleep(60)
    """))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-o", "timeout=2", "test_hang.py"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=50)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Timeout (>2.0s) from pytest-timeout" in run.stdout, run.stdout
