"""Every pipeline compiles to YAML that parses strictly into the KFP IR and carries the task settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import json_format
from kfp import compiler, dsl
from kfp import components as kfp_components
from kfp.pipeline_spec import pipeline_spec_pb2

from churnops.platform import declaration
from churnops.platform.settings import Settings
from pipelines import backfill, common
from pipelines.common import CONFIG_KEYS, SECRET_KEYS
from pipelines.compile import compile_all, compile_pipeline, parse_strict, pin_components_image
from pipelines.registry import PIPELINES

EXPECTED_TASKS = {
    "ingest": {"ingest-plan", "gate", "condition-2"},
    "training": {"features", "gate", "train", "gate-2", "train-2", "gate-3", "evaluate", "gate-4", "condition-2"},
    "scoring": {"resolve-model", "gate", "score", "gate-2"},
    "drift": {
        "online-features",
        "gate",
        "resolve-model",
        "gate-2",
        "drift-check",
        "gate-3",
        "condition-2",
        "performance-check",
        "gate-9",
    },
    "purge": {"purge", "gate"},
    "aggregates-backfill": {"backfill-aggregates", "gate"},
}
# Every step, with the gate (never retried) that fails the run with its refusal: (DAG, gate task) -> (step task,
# the step's name in the refusal). No step fails its own task on a refusal, so none is retried.
GATES = {
    "ingest": {
        ("comp-exit-handler-1", "gate"): ("ingest-plan", "ingest-plan"),
        ("comp-for-loop-3", "gate-2"): ("ingest-group", "ingest-group"),  # one per group, in the fan-out
        ("comp-condition-2", "gate-3"): ("ingest-finish", "ingest-finish"),
        ("comp-condition-2", "gate-4"): ("commit", "commit"),
    },
    "training": {
        ("comp-exit-handler-1", "gate"): ("features", "features"),
        ("comp-exit-handler-1", "gate-2"): ("train", "train-baseline"),
        ("comp-exit-handler-1", "gate-3"): ("train-2", "train-xgboost"),
        ("comp-exit-handler-1", "gate-4"): ("evaluate", "evaluate"),
        ("comp-condition-2", "gate-5"): ("register", "register"),
    },
    "scoring": {
        ("comp-exit-handler-1", "gate"): ("resolve-model", "resolve-model"),
        ("comp-exit-handler-1", "gate-2"): ("score", "score"),
    },
    "drift": {
        ("comp-exit-handler-1", "gate"): ("online-features", "online-features"),
        ("comp-exit-handler-1", "gate-2"): ("resolve-model", "resolve-model"),
        ("comp-exit-handler-1", "gate-3"): ("drift-check", "drift-check"),
        ("comp-exit-handler-1", "gate-9"): ("performance-check", "performance-check"),
        # the retraining: the training pipeline's tasks, each with its gate
        ("comp-condition-2", "gate-4"): ("features", "features"),
        ("comp-condition-2", "gate-5"): ("train", "train-baseline"),
        ("comp-condition-2", "gate-6"): ("train-2", "train-xgboost"),
        ("comp-condition-2", "gate-7"): ("evaluate", "evaluate"),
        ("comp-condition-3", "gate-8"): ("register", "register"),
    },
    "purge": {("comp-exit-handler-1", "gate"): ("purge", "purge")},
    "aggregates-backfill": {("comp-exit-handler-1", "gate"): ("backfill-aggregates", "backfill-aggregates")},
}


@pytest.fixture(scope="module", name="compiled")
def compiled_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every pipeline compiled once for the module, by name."""
    paths = compile_all(tmp_path_factory.mktemp("pipelines"))
    return {path.stem: path for path in paths}


def _dag_tasks(spec: pipeline_spec_pb2.PipelineSpec, component: str) -> dict[str, pipeline_spec_pb2.PipelineTaskSpec]:
    return dict(spec.components[component].dag.tasks)


def _upstream(body: dict[str, pipeline_spec_pb2.PipelineTaskSpec]) -> dict[str, set[str]]:
    """Every task of a DAG and all the tasks it waits for, directly or not."""
    found: dict[str, set[str]] = {}

    def visit(task: str) -> set[str]:
        if task not in found:
            direct = set(body[task].dependent_tasks)
            found[task] = direct.union(*(visit(parent) for parent in direct))
        return found[task]

    for task in body:
        visit(task)
    return found


def test_every_pipeline_compiles_and_parses_strictly(compiled: dict[str, Path]) -> None:
    assert set(compiled) == set(PIPELINES)
    for name, path in compiled.items():
        spec, platform = parse_strict(path)
        assert spec.pipeline_info.name == f"churnops-{name}"
        assert platform is not None and "kubernetes" in platform.platforms
        loaded = kfp_components.load_component_from_file(str(path))
        assert loaded.name == f"churnops-{name}"


def test_parse_strict_rejects_unknown_fields(compiled: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        compiled["scoring"].read_text(encoding="utf-8").replace("pipelineInfo:", "pipelineInfos:", 1), encoding="utf-8"
    )
    with pytest.raises(json_format.ParseError):
        parse_strict(broken)


def test_every_executor_runs_the_components_image_without_installing(compiled: dict[str, Path]) -> None:
    image = Settings().components_image
    for path in compiled.values():
        spec, _ = parse_strict(path)
        executors = spec.deployment_spec.fields["executors"].struct_value.fields
        assert executors
        for executor in executors.values():
            container = json_format.MessageToDict(executor.struct_value)["container"]
            assert container["image"] == image
            assert "pip install" not in " ".join(container["command"])


def test_the_image_is_the_settings_at_compile_time_not_at_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = "registry.example/churnops-components:compile-time"
    monkeypatch.setenv("CHURNOPS_COMPONENTS_IMAGE", image)  # set after every component was imported
    for name in PIPELINES:
        spec, _ = parse_strict(compile_pipeline(name, tmp_path))
        executors = spec.deployment_spec.fields["executors"].struct_value.fields
        images = {
            json_format.MessageToDict(executor.struct_value)["container"]["image"] for executor in executors.values()
        }
        assert images == {image}, name


def test_tasks_are_wired_under_an_exit_handler_that_alerts(compiled: dict[str, Path]) -> None:
    for name, path in compiled.items():
        spec, _ = parse_strict(path)
        root = spec.root.dag.tasks
        exit_task = root["alert-on-failure"]
        assert exit_task.trigger_policy.strategy == exit_task.trigger_policy.ALL_UPSTREAM_TASKS_COMPLETED
        assert exit_task.inputs.parameters["status"].task_final_status.producer_task == "exit-handler-1"
        # The alert names the pipeline and the run (the 2.17.0 driver resolves both placeholders, resolve.go), and
        # looks the failing task up by the run's id (the final status names only exit-handler-1).
        constants = {
            key: value.runtime_value.constant.string_value for key, value in exit_task.inputs.parameters.items()
        }
        assert constants["pipeline"] == name
        assert constants["run_id"] == "{{$.pipeline_job_uuid}}"
        assert constants["run_name"] == "{{$.pipeline_job_name}}"
        body = _dag_tasks(spec, "comp-exit-handler-1")
        assert set(body) == EXPECTED_TASKS[name]


def test_every_task_has_resources_no_caching_and_network_retries(compiled: dict[str, Path]) -> None:
    for path in compiled.values():
        spec, _ = parse_strict(path)
        tasks = dict(spec.root.dag.tasks)
        for component in spec.components.values():
            tasks.update(component.dag.tasks)
        for task_name, task in tasks.items():
            if task.component_ref.name.startswith(("comp-exit-handler", "comp-for-loop")) or task_name.startswith(
                "condition"
            ):
                continue
            assert not task.caching_options.enable_cache, task_name
            gate = task.component_ref.name.startswith("comp-gate")
            assert task.retry_policy.max_retry_count == (0 if gate else 3), task_name
        executors = spec.deployment_spec.fields["executors"].struct_value.fields
        for executor in executors.values():
            resources = json_format.MessageToDict(executor.struct_value)["container"]["resources"]
            assert {"cpuRequest", "cpuLimit", "memoryRequest", "memoryLimit"} <= set(resources)


def test_kubernetes_settings_reference_secrets_and_pin_the_pool(compiled: dict[str, Path]) -> None:
    settings = Settings()
    for path in compiled.values():
        _, platform = parse_strict(path)
        assert platform is not None
        executors = json_format.MessageToDict(platform.platforms["kubernetes"])["deploymentSpec"]["executors"]
        for config in executors.values():
            assert config["nodeSelector"]["labels"] == {"cloud.google.com/gke-nodepool": settings.pipeline_node_pool}
            assert config["tolerations"][0]["value"] == settings.pipeline_node_pool
            assert config["imagePullPolicy"] == settings.image_pull_policy
            assert config["securityContext"]["runAsNonRoot"] is True
            # every task has a timeout
            assert int(config["activeDeadlineSeconds"]) in {20 * 60, 90 * 60, common.BACKFILL.timeout_seconds}
            (secret,) = config["secretAsEnv"]
            assert secret["secretName"] == settings.pipeline_secret
            assert {item["secretKey"]: item["envVar"] for item in secret["keyToEnv"]} == SECRET_KEYS
            assert all(set(item) == {"secretKey", "envVar"} for item in secret["keyToEnv"])  # references only
            (config_map,) = config["configMapAsEnv"]
            assert [item["envVar"] for item in config_map["keyToEnv"]] == list(CONFIG_KEYS)


def test_ingest_takes_its_hour_from_the_scheduled_time(compiled: dict[str, Path]) -> None:
    spec, _ = parse_strict(compiled["ingest"])
    ingest = _dag_tasks(spec, "comp-exit-handler-1")["ingest-plan"]
    constant = ingest.inputs.parameters["scheduled_time"].runtime_value.constant.string_value
    assert constant == "{{$.pipeline_job_schedule_time_utc}}"
    created = ingest.inputs.parameters["created_time"].runtime_value.constant.string_value
    assert created == "{{$.pipeline_job_create_time_utc}}"  # to tell KFP's creation-time fallback apart
    assert ingest.inputs.parameters["hour"].component_input_parameter == "pipelinechannel--hour"


def test_the_steps_that_clean_up_after_a_lost_attempt_get_the_kfp_run_id(compiled: dict[str, Path]) -> None:
    """A retried ingest removes the branch its lost attempt left, a retried features resumes the run's MLflow
    parent run: both know the attempts of one run by its id (the same for every retry of the run)."""
    for name, task in (("ingest", "ingest-plan"), ("training", "features")):
        spec, _ = parse_strict(compiled[name])
        step = _dag_tasks(spec, "comp-exit-handler-1")[task]
        assert step.inputs.parameters["pipeline_run"].runtime_value.constant.string_value == "{{$.pipeline_job_uuid}}"


def test_a_refusal_fails_the_run_at_a_gate_that_is_never_retried(compiled: dict[str, Path]) -> None:
    for name, gates in GATES.items():
        spec, _ = parse_strict(compiled[name])
        steps = {
            task_name
            for component in spec.components.values()
            for task_name, task in component.dag.tasks.items()
            if not task.component_ref.name.startswith(("comp-gate", "comp-condition", "comp-for-loop"))
        }
        assert steps == {step for step, _ in gates.values()}, name  # every step has its gate
        for (dag, gate_name), (step, label) in gates.items():
            body = _dag_tasks(spec, dag)
            gate = body[gate_name]
            assert not gate.HasField("retry_policy"), (name, gate_name)
            assert gate.inputs.parameters["step"].runtime_value.constant.string_value == label
            refused = gate.inputs.parameters["refused"].task_output_parameter
            assert (refused.producer_task, refused.output_parameter_key) == (step, "refused")
            # Whatever comes after the step runs only after its gate passed.
            later = [task for task, upstream in _upstream(body).items() if step in upstream and task != gate_name]
            assert all(gate_name in _upstream(body)[task] for task in later), (name, step)


def test_ingest_fans_out_over_groups_then_finishes_and_commits_only_when_something_is_new(
    compiled: dict[str, Path],
) -> None:
    spec, _ = parse_strict(compiled["ingest"])
    body = _dag_tasks(spec, "comp-exit-handler-1")
    gate = body["gate"]
    assert gate.inputs.parameters["passes"].task_output_parameter.output_parameter_key == "branch"
    condition = body["condition-2"]
    # On the gate's single output (the run branch, empty when nothing was new): kfp.local resolves a condition
    # on a task output only when it is the task's `Output`.
    assert condition.trigger_policy.condition == "inputs.parameter_values['pipelinechannel--gate-Output'] != ''"
    new = _dag_tasks(spec, "comp-condition-2")
    # One ingest-group task per item of the plan's groups (one JSON text each), at most the setting's at a time.
    loop = new["for-loop-3"]
    assert loop.parameter_iterator.items.input_parameter == "pipelinechannel--ingest-plan-groups"
    assert loop.iterator_policy.parallelism_limit == Settings().ingest_fanout
    group = _dag_tasks(spec, "comp-for-loop-3")["ingest-group"]
    assert group.inputs.parameters["group"].component_input_parameter == "pipelinechannel--ingest-plan-groups-loop-item"
    # The finish waits for every group's gate (their outputs, collected) and reads the plan.
    finish = new["ingest-finish"]
    assert finish.dependent_tasks == ["for-loop-3"]
    staged = finish.inputs.parameters["staged"].task_output_parameter
    assert (staged.producer_task, staged.output_parameter_key) == ("for-loop-3", "pipelinechannel--gate-2-Output")
    assert finish.inputs.parameters["plan"].component_input_parameter == "pipelinechannel--ingest-plan-plan"
    # The commit takes the branch the finish's gate passed on, and the finish's commit metadata.
    commit = new["commit"]
    assert commit.component_ref.name == "comp-commit"
    assert commit.inputs.parameters["branch"].task_output_parameter.producer_task == "gate-3"
    metadata = commit.inputs.parameters["metadata"].task_output_parameter
    assert (metadata.producer_task, metadata.output_parameter_key) == ("ingest-finish", "metadata")


def test_the_fan_out_is_the_setting_when_the_pipeline_is_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_INGEST_FANOUT", "7")
    spec, _ = parse_strict(compile_pipeline("ingest", tmp_path))
    plan = _dag_tasks(spec, "comp-exit-handler-1")["ingest-plan"]
    assert plan.inputs.parameters["fanout"].runtime_value.constant.number_value == 7  # groups the plan makes
    assert _dag_tasks(spec, "comp-condition-2")["for-loop-3"].iterator_policy.parallelism_limit == 7  # at once


def test_register_runs_only_when_the_gate_passes(compiled: dict[str, Path]) -> None:
    spec, _ = parse_strict(compiled["training"])
    body = _dag_tasks(spec, "comp-exit-handler-1")
    # The condition reads the single output of evaluate's refusal gate: the winner's name, empty when the model
    # gate refused both.
    passed = body["gate-4"].inputs.parameters["passes"].task_output_parameter
    assert (passed.producer_task, passed.output_parameter_key) == ("evaluate", "winner")
    condition = body["condition-2"]
    assert condition.trigger_policy.condition == "inputs.parameter_values['pipelinechannel--gate-4-Output'] != ''"
    assert condition.inputs.parameters["pipelinechannel--gate-4-Output"].task_output_parameter.producer_task == "gate-4"
    register = _dag_tasks(spec, "comp-condition-2")["register"]
    assert register.inputs.parameters["winner"].component_input_parameter == "pipelinechannel--gate-4-Output"
    assert {name: a.component_input_artifact for name, a in register.inputs.artifacts.items()} == {
        "baseline": "pipelinechannel--train-model",
        "challenger": "pipelinechannel--train-2-model",
        # the splits the winner is refit on before registration
        "train_split": "pipelinechannel--features-train",
        "validation_split": "pipelinechannel--features-validation",
        "test_split": "pipelinechannel--features-test",
    }
    train_tasks = {n: t for n, t in _dag_tasks(spec, "comp-exit-handler-1").items() if n.startswith("train")}
    # The two fits run in parallel, after the features and their gate.
    assert all(sorted(t.dependent_tasks) == ["features", "gate"] for t in train_tasks.values())


def test_scoring_and_drift_use_the_model_resolve_model_outputs(compiled: dict[str, Path]) -> None:
    """The alias is resolved once, by a task whose output is the model (a KFP Model artifact): the tasks that score or
    check consume that artifact, which the run's lineage records, and wait for the resolving step's gate."""
    for name, parameter, consumers in (
        ("scoring", "alias", ("score",)),
        ("drift", "model_ref", ("drift-check", "performance-check")),
    ):
        spec, _ = parse_strict(compiled[name])
        body = _dag_tasks(spec, "comp-exit-handler-1")
        resolved = body["resolve-model"]
        assert resolved.inputs.parameters["model_ref"].component_input_parameter == f"pipelinechannel--{parameter}"
        outputs = spec.components["comp-resolve-model"].output_definitions.artifacts
        assert outputs["model"].artifact_type.schema_title == "system.Model"
        for consumer in consumers:
            model = body[consumer].inputs.artifacts["model"].task_output_artifact
            assert (model.producer_task, model.output_artifact_key) == ("resolve-model", "model"), (name, consumer)
            inputs = spec.components[body[consumer].component_ref.name].input_definitions
            assert inputs.artifacts["model"].artifact_type.schema_title == "system.Model"
            assert not {"alias", "model_ref"} & set(inputs.parameters)  # no task resolves the alias again
            assert "gate" in _upstream(body)[consumer] or "gate-2" in _upstream(body)[consumer]


def test_a_firing_drift_check_runs_the_training_pipelines_tasks(compiled: dict[str, Path]) -> None:
    drift, _ = parse_strict(compiled["drift"])
    training, _ = parse_strict(compiled["training"])
    body = _dag_tasks(drift, "comp-exit-handler-1")
    passed = body["gate-3"].inputs.parameters["passes"].task_output_parameter
    assert (passed.producer_task, passed.output_parameter_key) == ("drift-check", "retrain")
    condition = body["condition-2"]
    assert condition.task_info.name == "retrain-on-drift"
    assert condition.trigger_policy.condition == "inputs.parameter_values['pipelinechannel--gate-3-Output'] == 'true'"

    def shown(spec: pipeline_spec_pb2.PipelineSpec, dags: tuple[str, ...]) -> dict[str, str]:
        """Display name -> component of the tasks of ``dags`` (gates aside: their numbering differs)."""
        return {
            task.task_info.name: task.component_ref.name
            for dag in dags
            for task in _dag_tasks(spec, dag).values()
            if not task.component_ref.name.startswith(("comp-gate", "comp-condition"))
        }

    retraining = shown(drift, ("comp-condition-2", "comp-condition-3"))
    assert retraining == shown(training, ("comp-exit-handler-1", "comp-condition-2"))
    executors = {
        spec_name: json_format.MessageToDict(spec.deployment_spec)["executors"]
        for spec_name, spec in (("drift", drift), ("training", training))
    }
    for component in retraining.values():  # the same component sources: one composition of training
        executor = f"exec-{component.removeprefix('comp-')}"
        assert executors["drift"][executor] == executors["training"][executor], component
    features = _dag_tasks(drift, "comp-condition-2")["features"]
    assert (
        features.inputs.parameters["reason"].component_input_parameter == "pipelinechannel--drift-check-retrain_reason"
    )
    assert features.inputs.parameters["data_ref"].runtime_value.constant.string_value == ""  # the head of main
    assert features.inputs.parameters["pipeline_run"].runtime_value.constant.string_value == "{{$.pipeline_job_uuid}}"
    # The drift check only reports: no training inside it.
    outputs = set(drift.components["comp-drift-check"].output_definitions.parameters)
    assert {"retrain", "retrain_reason"} <= outputs and not {"retrain_run_id", "retrained_version"} & outputs


def test_network_tasks_retry_with_the_configured_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNOPS_PIPELINE_RETRY_BACKOFF_SECONDS", "7")
    path = compile_pipeline("scoring", tmp_path)
    spec, _ = parse_strict(path)
    retry = _dag_tasks(spec, "comp-exit-handler-1")["score"].retry_policy
    assert retry.max_retry_count == 3 and retry.backoff_factor == 2.0
    assert retry.backoff_duration.seconds == 7 and retry.backoff_max_duration.seconds == 300


def test_every_task_names_its_service_account_for_the_registry_and_logs_in_to_mlflow_as_it(
    compiled: dict[str, Path],
) -> None:
    for path in compiled.values():
        _, platform = parse_strict(path)
        assert platform is not None
        executors = json_format.MessageToDict(platform.platforms["kubernetes"])["deploymentSpec"]["executors"]
        for config in executors.values():
            assert config["fieldPathAsEnv"] == [
                {"name": "CHURNOPS_SERVICE_ACCOUNT", "fieldPath": "spec.serviceAccountName"},
                {"name": "CHURNOPS_MLFLOW_USERNAME", "fieldPath": "spec.serviceAccountName"},
            ]


def _container_envs(path: Path) -> list[dict[str, str]]:
    """Each task's plain environment variables but ``TMPDIR`` (which the tasks with a temporary volume get)."""
    spec, _ = parse_strict(path)
    executors = spec.deployment_spec.fields["executors"].struct_value.fields
    containers = [json_format.MessageToDict(e.struct_value)["container"] for e in executors.values()]
    assert containers
    return [
        {var["name"]: var["value"] for var in container.get("env", []) if var["name"] != common.TEMP_DIR_ENV}
        for container in containers
    ]


def test_a_digest_pinned_image_is_recorded_as_every_tasks_image_digest(tmp_path: Path) -> None:
    digest = "sha256:" + "ab" * 32
    image = f"europe-west1-docker.pkg.dev/p/churnops/churnops-components@{digest}"
    path = compile_pipeline("training", tmp_path, components_image=image)
    assert all(env == {"CHURNOPS_IMAGE_DIGEST": digest} for env in _container_envs(path))
    pin_components_image(path, "churnops/components:dev")  # a tag names no digest: the variable goes
    assert all("CHURNOPS_IMAGE_DIGEST" not in env for env in _container_envs(path))


@dsl.component(base_image="python:3.11-slim", install_kfp_package=False)
def _noop():  # no return annotation: under postponed annotations KFP reads "None" as an output type
    """A task for configure() to act on."""


def test_configure_records_the_settings_image_digest_when_it_is_pinned(tmp_path: Path) -> None:
    digest = "sha256:" + "cd" * 32
    pinned, tagged = (
        Settings(components_image=f"registry.example/churnops-components@{digest}"),
        Settings(components_image="registry.example/churnops-components:1.2"),
    )

    @dsl.pipeline(name="configure-probe")
    def probe():  # no return annotation (see _noop)
        common.configure(_noop(), pinned, display_name="pinned")
        common.configure(_noop(), tagged, display_name="tagged")

    path = tmp_path / "probe.yaml"
    compiler.Compiler().compile(probe, str(path))
    assert sorted(map(len, _container_envs(path))) == [0, 1]  # the tagged task records no digest
    assert {"CHURNOPS_IMAGE_DIGEST": digest} in _container_envs(path)


def test_every_pipeline_parameter_and_component_input_has_a_description(compiled: dict[str, Path]) -> None:
    """What the KFP UI shows beside each parameter and input: the ``Args`` of the pipeline's and each
    component's docstring (the IR has no description of a component itself, nor of its outputs)."""
    for name, path in compiled.items():
        spec, _ = parse_strict(path)
        parameters = dict(spec.root.input_definitions.parameters)
        assert parameters or name == backfill.NAME, name  # the backfill takes none: it fills whatever main lacks
        missing = [f"{name}: parameter {key}" for key, value in parameters.items() if not value.description]
        assert spec.pipeline_info.description, name
        for component_name, component in spec.components.items():
            if component.WhichOneof("implementation") == "dag":
                continue
            inputs = component.input_definitions
            described = [*inputs.parameters.items(), *inputs.artifacts.items()]
            missing += [f"{component_name}.{key}" for key, value in described if not value.description]
        assert not missing, missing


def test_every_pipeline_is_scheduled_as_the_platform_declares() -> None:
    """The recurring runs come from one declaration, which names every pipeline and no other."""
    assert set(declaration.PIPELINE_CRONS) == set(PIPELINES)
    assert {name: entry.cron for name, entry in PIPELINES.items()} == declaration.PIPELINE_CRONS
    assert [name for name, cron in declaration.PIPELINE_CRONS.items() if cron is None] == ["training", backfill.NAME]
    for name in ("training", backfill.NAME):  # each says what starts it instead
        assert PIPELINES[name].trigger != "a KFP recurring run", name


def test_the_aggregates_backfill_runs_the_library_backfill_on_its_own_resources(compiled: dict[str, Path]) -> None:
    """One task, ``backfill_aggregates``, its outputs what was backfilled and the commit (read by the gate for its
    refusal), on the resources declared for it: no temporary-file volume (it holds one partition in memory and
    writes none), six hours."""
    spec, platform = parse_strict(compiled[backfill.NAME])
    body = _dag_tasks(spec, "comp-exit-handler-1")
    task = body["backfill-aggregates"]
    assert task.task_info.name == "backfill-aggregates" and not task.inputs.parameters
    outputs = json_format.MessageToDict(spec.components["comp-backfill-aggregates"].output_definitions)["parameters"]
    assert {key: value["parameterType"] for key, value in outputs.items()} == {
        "partitions": "NUMBER_INTEGER",
        "events": "NUMBER_INTEGER",
        "commit_id": "STRING",
        "refused": "STRING",
    }
    executors = json_format.MessageToDict(spec.deployment_spec)["executors"]
    container = executors["exec-backfill-aggregates"]["container"]
    assert container["args"][container["args"].index("--function_to_execute") + 1] == "backfill_aggregates"
    declared = common.BACKFILL
    resources = {key: value for key, value in container["resources"].items() if key.startswith("resource")}
    assert resources == {
        "resourceCpuRequest": declared.cpu_request,
        "resourceCpuLimit": declared.cpu_limit,
        "resourceMemoryRequest": declared.memory_request,
        "resourceMemoryLimit": declared.memory_limit,
    }
    assert platform is not None
    configs = json_format.MessageToDict(platform.platforms["kubernetes"])["deploymentSpec"]["executors"]
    config = configs["exec-backfill-aggregates"]
    assert int(config["activeDeadlineSeconds"]) == declared.timeout_seconds
    assert "emptyDirMounts" not in config and declared.temp_disk is None
    assert PIPELINES[backfill.NAME].cron is None  # run by hand: `churnops pipeline schedule` refuses it
