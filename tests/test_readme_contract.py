"""The README's two set-up commands are the contract; CI must run the test one verbatim."""
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def readme_commands():
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"^(pip install .*)$", readme, flags=re.M)


@pytest.mark.skipif(not (ROOT / ".ci" / "run").exists(), reason="not a source checkout")
def test_ci_runs_the_readme_test_command():
    commands = readme_commands()
    main_job = [c for c in commands if "fastoptim bench" in c]
    tests = [c for c in commands if "[test]" in c]
    assert len(main_job) == 1 and len(tests) == 1, commands
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests[0] in ci_lines
