"""camels: open instruction datasets to an instruction-tuned model, measured benchmark by benchmark.

The distribution is published as ``camels-instruct`` (the name ``camels`` on the package index belongs to an
unrelated project); the import name and the ``camels`` command are ``camels``.
"""

#: The name to ``pip install``.
DISTRIBUTION = "camels-instruct"

# The one place the version is written: pyproject.toml reads it from here (setuptools' dynamic version).
__version__ = "0.1.0"


def installed_version() -> str:
    """The version of the installed distribution (its metadata), else the source tree's ``__version__``
    (running from a checkout that is not installed, or installed under the earlier distribution name)."""
    from importlib import metadata

    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return __version__
