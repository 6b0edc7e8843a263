"""The pipelines node pool's boot disk holds the temporary-file volumes of as many tasks as one node admits.

The backend cannot request ephemeral storage for a task (``test_temp_disk.py``), so the scheduler places tasks by
CPU and memory request alone and never counts their ``emptyDir`` volumes: a node takes as many tasks as its CPU and
memory admit, whatever their volumes' size limits add up to. This test does that sum for the worst mix: from every
pipeline's compiled tasks (parsed with the installed backend's protos), each task's CPU and memory request and its
volumes' size limits; the mix of tasks one node of the pipelines pool admits by request that has the largest volumes
in all; and that total against the node's allocatable ephemeral storage, which GKE leaves to pods once it has
reserved the system's share (images, logs, the node's own files) and the kubelet's eviction threshold.

The pool (its machine type and boot disk) is read from the Pulumi program run under mocks in its own environment
for each stack, as the assembled-system test reads it (``tests/support/assembly.py``). The machine types' shapes and
GKE's ephemeral-storage reservation come from Google's documentation (``tests/specs/gke/node-facts.yaml``): the
machine's whole vCPU and memory stand for what the node admits (GKE reserves some of both, so no more tasks fit than
counted here), and the reservation is taken as the share of the boot disk GKE's documented example node leaves
allocatable.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.utils import parse_quantity

from churnops.platform import declaration as platform
from pipelines.registry import PIPELINES
from tests.support import assembly
from tests.unit.pipelines.test_temp_disk import compiled_executors

ROOT = Path(__file__).resolve().parents[3]
FACTS = yaml.safe_load((ROOT / "tests" / "specs" / "gke" / "node-facts.yaml").read_text(encoding="utf-8"))
NODE_POOL = "gcp:container/nodePool:NodePool"
GIB = 2**30


@dataclass(frozen=True)
class Task:
    """What the scheduler and the node's disk see of one compiled task."""

    where: str  # pipeline/executor
    cpu: float  # cores requested
    memory: int  # bytes requested
    disk: int  # bytes: the sum of its emptyDir size limits
    pool: str  # the node pool it is selected onto


@dataclass(frozen=True)
class Node:
    """One node of a pool: what it admits by request and the ephemeral storage it leaves to pods."""

    pool: str
    machine_type: str
    disk_gb: int
    cpu: float
    memory: int

    @property
    def allocatable_disk(self) -> int:
        """The node's allocatable ephemeral storage: the documented example node's share of its boot disk."""
        example = FACTS["example_node"]
        share = int(parse_quantity(example["ephemeral_storage_allocatable"])) / (example["boot_disk_gb"] * GIB)
        return int(self.disk_gb * GIB * share)


def _tasks(out: Path) -> list[Task]:
    """Every task of every pipeline, compiled."""
    found = []
    for name in sorted(PIPELINES):
        functions, containers, configs = compiled_executors(name, out / name)
        for executor in functions:
            resources, config = containers[executor]["resources"], configs[executor]
            found.append(
                Task(
                    where=f"{name}/{executor}",
                    cpu=float(parse_quantity(resources["resourceCpuRequest"])),
                    memory=int(parse_quantity(resources["resourceMemoryRequest"])),
                    disk=sum(int(parse_quantity(mount["size_limit"])) for mount in config.get("empty_dir_mounts", [])),
                    pool=config["node_selector"]["labels"][platform.POOL_LABEL],
                )
            )
    return found


def _node(resources: list[dict[str, Any]], pool: str) -> Node:
    """The node of ``pool`` as the Pulumi program declares it (machine type, boot disk) with its machine's shape."""
    (inputs,) = [r["inputs"] for r in resources if r["type"] == NODE_POOL and r["inputs"]["name"] == pool]
    machine_type = inputs["nodeConfig"]["machineType"]
    shapes = FACTS["machine_types"]
    assert machine_type in shapes, f"add {machine_type}'s shape to tests/specs/gke/node-facts.yaml (its source)"
    shape = shapes[machine_type]
    return Node(
        pool=pool,
        machine_type=machine_type,
        disk_gb=int(inputs["nodeConfig"]["diskSizeGb"]),
        cpu=float(shape["vcpus"]),
        memory=int(parse_quantity(shape["memory"])),
    )


def largest_volumes(tasks: list[Task], node: Node) -> tuple[int, dict[Task, int]]:
    """The mix of tasks (how many of each) one node admits by CPU and memory request whose volumes add up to the
    most, and that sum. Tasks without a volume only take room, so only those with one are mixed."""
    kinds = sorted({replace(task, where="") for task in tasks if task.disk}, key=lambda t: (t.cpu, t.memory, t.disk))
    best: tuple[int, dict[Task, int]] = (0, {})
    ranges = [range(int(min(node.cpu / kind.cpu, node.memory / kind.memory)) + 1) for kind in kinds]
    for counts in itertools.product(*ranges):
        cpu = sum(n * kind.cpu for n, kind in zip(counts, kinds))
        memory = sum(n * kind.memory for n, kind in zip(counts, kinds))
        disk = sum(n * kind.disk for n, kind in zip(counts, kinds))
        if cpu <= node.cpu and memory <= node.memory and disk > best[0]:
            best = (disk, {kind: n for n, kind in zip(counts, kinds) if n})
    return best


def disk_problems(tasks: list[Task], node: Node) -> list[str]:
    """Why the node's disk cannot hold the volumes of the tasks it admits (empty: it can)."""
    on_pool = [task for task in tasks if task.pool == node.pool]
    total, mix = largest_volumes(on_pool, node)
    if total <= node.allocatable_disk:
        return []
    tasks_in_mix = ", ".join(
        f"{n} x (cpu {kind.cpu:g}, memory {kind.memory / GIB:g} GiB, volumes {kind.disk / GIB:g} GiB)"
        for kind, n in mix.items()
    )
    return [
        f"a {node.machine_type} node with a {node.disk_gb} GB boot disk leaves {node.allocatable_disk / GIB:.1f} GiB "
        f"of ephemeral storage to pods, and admits tasks whose volumes take {total / GIB:g} GiB: {tasks_in_mix}"
    ]


@pytest.fixture(name="tasks", scope="module")
def tasks_fixture(tmp_path_factory: pytest.TempPathFactory) -> list[Task]:
    """Every compiled task of every pipeline."""
    return _tasks(tmp_path_factory.mktemp("compiled"))


@pytest.fixture(name="node", scope="module", params=("staging", "prod"))
def node_fixture(request: pytest.FixtureRequest, tasks: list[Task]) -> Node:
    """A node of the pool the tasks run on, as the stack's Pulumi program declares it."""
    (pool,) = {task.pool for task in tasks}
    return _node(assembly.dump_stack(request.param).resources, pool)


def test_every_task_runs_on_the_pipelines_pool_and_some_have_volumes(tasks: list[Task]) -> None:
    assert {task.pool for task in tasks} == {platform.POOL_PIPELINES}
    assert [task for task in tasks if task.disk] and all(task.cpu > 0 and task.memory > 0 for task in tasks)


def test_the_pipelines_node_disk_holds_the_volumes_of_the_tasks_it_admits(tasks: list[Task], node: Node) -> None:
    assert not disk_problems(tasks, node)
    total, mix = largest_volumes(tasks, node)
    assert total > 0 and mix  # the check saw volumes: it weighed something


@pytest.mark.parametrize(
    ("disk_gb", "grown", "fits"),
    [
        (None, 1, True),  # as declared
        (50, 1, False),  # a smaller boot disk
        (None, 2, False),  # every volume twice its size
    ],
)
def test_a_smaller_disk_or_larger_volumes_are_caught(
    tasks: list[Task], node: Node, disk_gb: int | None, grown: int, fits: bool
) -> None:
    changed_node = replace(node, disk_gb=disk_gb or node.disk_gb)
    changed_tasks = [replace(task, disk=task.disk * grown) for task in tasks]
    assert (not disk_problems(changed_tasks, changed_node)) is fits


def test_the_mix_is_the_one_with_the_largest_volumes_the_node_admits() -> None:
    """Two kinds of task, neither of which alone makes the largest sum: the mix is weighed over both."""
    node = Node(pool="p", machine_type="m", disk_gb=100, cpu=8, memory=32 * GIB)
    small = Task(where="a", cpu=0.5, memory=GIB, disk=GIB, pool="p")
    large = Task(where="b", cpu=1, memory=8 * GIB, disk=5 * GIB, pool="p")
    total, mix = largest_volumes([small, large], node)
    # by memory at most 4 large (20 GiB of volumes), by CPU at most 16 small (16 GiB); 3 large leave 8 GiB of memory
    # for 8 small (23 GiB), 2 large leave 6 cores for 12 small (22 GiB), 1 large leaves 7 cores for 14 small (19 GiB)
    assert total == 23 * GIB
    assert mix == {replace(small, where=""): 8, replace(large, where=""): 3}
