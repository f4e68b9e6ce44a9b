"""torch only where it is used: the components that serve without it never import it.

Each check imports the modules in a fresh interpreter (this one has torch loaded already)
and reads `sys.modules`.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "sentence_transformers", "sklearn", "scipy")


def imported_heavy_modules(*modules: str) -> list[str]:
    code = "import importlib, json, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


@pytest.mark.parametrize(
    "modules",
    [
        ("lwm.services.gateway.server",),
        ("lwm.services.organizer.server", "lwm.services.organizer.backup", "lwm.services.organizer.sweeper"),
        ("lwm.client", "lwm.client.market", "lwm.client.cli"),
        # the commands of other distributions, loaded by every `lwm` (lwm.commands), and `lwm serve`'s launcher
        ("lwm.services.market.cli", "lwm.services.market.launch", "lwm.services.organizer.cli"),
        ("lwm.learnware.archive", "lwm.learnware.semantic", "lwm.learnware.vocabulary"),
    ],
    ids=["gateway", "organizer", "client", "command-plugins", "learnware-format"],
)
def test_component_serves_without_heavy_imports(modules: tuple[str, ...]) -> None:
    assert imported_heavy_modules(*modules) == []
