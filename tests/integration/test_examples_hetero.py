"""examples/hetero_workflow.py run as a user runs it (it starts its own Hetero market)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_examples import accuracy_after, run_example

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_hetero_workflow_finds_the_users_region_and_aligned_reuse_works(tmp_path: Path) -> None:
    output = run_example("hetero_workflow.py", tmp_path)
    assert output.count(" USABLE ") == 3, output
    assert re.search(r"search path: .*hetero", output, re.IGNORECASE), output
    assert "top-1: region 1 (the user's: 1)" in output
    assert accuracy_after("hetero_align without labels", output) > 0.8
    tuned = accuracy_after("hetero_align with 50 labelled rows", output)
    assert tuned > 0.85 and tuned >= accuracy_after("a model trained on the 50 labelled rows alone", output) - 0.02, output
    assert "local aligned predictions agree with the market's" in output
