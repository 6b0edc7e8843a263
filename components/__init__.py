"""KFP components: one file per stage, thin wrappers whose bodies call the ``churnops`` library.

Every component is a lightweight Python component declared with :func:`component`: its image is the
project's components image (``components/Dockerfile``), which already holds ``kfp`` and ``churnops``,
so no component installs anything at run time; locally, ``kfp.local``'s SubprocessRunner runs the
same bodies with the current interpreter.

Nothing here reads the settings at import: a component is declared with the setting's default
image (:data:`IMAGE`), and :func:`pipelines.common.configure` gives every task the image of the
settings read when the pipeline is built (``CHURNOPS_COMPONENTS_IMAGE``). A task's body reads its
settings when it starts (:func:`churnops.platform.settings.settings_or_exit`): an invalid one ends
the task with one line naming the variable and exit status 2.
"""

from collections.abc import Callable
from typing import Any

from kfp import dsl

from churnops.platform.settings import DEFAULT_COMPONENTS_IMAGE

IMAGE = DEFAULT_COMPONENTS_IMAGE
"""The image components are declared with (the setting's default, from no environment)."""


def component(func: Callable[..., object]) -> Callable[..., Any]:
    """``func`` as a KFP component on :data:`IMAGE` that installs nothing at run time (``dsl.component``).

    kfp ships no type information, so to a type checker ``dsl.component`` and the component it returns
    are untyped; declared through this function, every component is a callable whose result (the
    ``PipelineTask`` a pipeline gets) is ``Any``, and no component module needs an exception.
    """
    declared: Callable[..., Any] = dsl.component(base_image=IMAGE, install_kfp_package=False)(func)
    return declared
