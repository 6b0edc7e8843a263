"""Print, as JSON, every resource the Pulumi program registers for a stack (under mocks: no CLI, no cloud).

The assembled-system test (tests/integration/platform/test_assembled_system.py) runs this in the
program's own environment and reads the result next to the manifests, the pipelines and the builds.
usage: python infra/dump_resources.py <stack>
"""

from __future__ import annotations

import json
import sys

from conftest import run_program, stack_config


def main(stack: str) -> None:
    """Run the program for ``stack`` and write its resources to stdout."""
    run = run_program(stack, stack_config(stack))
    resources = [{"type": r.type, "name": r.name, "inputs": r.inputs} for r in run.resources]
    json.dump({"stack": stack, "project": run.project, "resources": resources}, sys.stdout, default=str)


if __name__ == "__main__":
    main(sys.argv[1])
