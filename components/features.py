"""The features component: the train, validation and test feature matrices at one lake commit."""

# pylint: disable=import-outside-toplevel
# KFP runs only the function's own source in the task, so every import lives in the body.

from typing import NamedTuple, Optional

from kfp.dsl import Dataset, Output

from components import component


# valid-type: KFP takes the outputs from an inline NamedTuple, which mypy cannot type; a module-level
# class would not exist in the task, which runs only this function's source.
@component
def features(
    data_ref: str,
    seed: int,
    train: Output[Dataset],
    validation: Output[Dataset],
    test: Output[Dataset],
    pipeline_run: str = "",
    reason: Optional[dict[str, str]] = None,
) -> NamedTuple(  # type: ignore[valid-type]
    "FeaturesOutputs", [("data_commit", str), ("parent_run_id", str), ("lineage", dict), ("refused", str)]
):
    """Resolve `data_ref` (a lake commit id, or empty for the head of `main`) to a commit, build
    customer features and churn labels at hourly cutoffs, split them by time, open the MLflow parent
    run (lineage tags, dataset inputs) and commit the matrices to the lake's `features` branch.
    Outputs one parquet Dataset per split, with the feature spec in its metadata. The parent run is one
    per pipeline run (`pipeline_run`): a retried attempt resumes it and publishes the matrices once. Too
    little data (or a
    lake commit that breaks the contract) is the `refused` output (the splits are then empty files), which
    the gate after it fails the run with, never retried.

    Args:
        data_ref: The lake commit id to train on; empty: the head of `main`.
        seed: The random seed of the split.
        train: The train split (parquet, written).
        validation: The validation split (parquet, written).
        test: The test split (parquet, written).
        pipeline_run: The KFP run id (KFP's placeholder): a retry of this task reuses the run's MLflow parent run.
        reason: What started the training, as tags of the parent run (a drift check's); none for a scheduled or
            manual training.
    """
    from collections import namedtuple

    from churnops.platform.logs import setup_logging
    from churnops.platform.retry import leave_empty, run_step
    from churnops.platform.settings import settings_or_exit
    from churnops.training import train as training

    settings = settings_or_exit()
    setup_logging(settings)
    outputs = namedtuple("outputs", ["data_commit", "parent_run_id", "lineage", "refused"])
    splits = (("train", train), ("validation", validation), ("test", test))
    outcome = run_step(
        "features",
        lambda: training.begin_training_at(
            settings,
            data_ref or None,
            seed,
            pipeline_run=pipeline_run,
            reason={k: str(v) for k, v in (reason or {}).items()},
        ),
        settings.step_retry_seconds,
    )
    setup = outcome.value
    if setup is None:
        leave_empty(train.path, validation.path, test.path)
        return outputs("", "", {}, outcome.refused)
    for split, artifact in splits:
        training.write_split(setup, split, artifact.path)
        artifact.metadata.update(training.split_metadata(setup, split))
    return outputs(setup.data_commit, setup.parent_run_id, setup.lineage, "")
