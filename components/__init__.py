"""KFP components: one file per stage, thin wrappers whose bodies call the ``churnops`` library.

Every component is a lightweight Python component whose ``base_image`` is the project's components
image (``components/Dockerfile``; the name comes from ``CHURNOPS_COMPONENTS_IMAGE``). The image
already holds ``kfp`` and ``churnops``, so no component installs anything at run time; locally,
``kfp.local``'s SubprocessRunner runs the same bodies with the current interpreter.
"""


from churnops.platform.settings import Settings


def components_image() -> str:
    """The image every component runs (``CHURNOPS_COMPONENTS_IMAGE``, else the settings default)."""
    return Settings().components_image


IMAGE = components_image()
