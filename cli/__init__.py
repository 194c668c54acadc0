"""The user-facing edge: the ``ccl`` and ``vvm`` commands, exit codes, and how failures are
shown. The libraries below (``ccl``, ``ground``, ``onboard``) print nothing and exit nothing;
they raise errors here, which ``cli.console`` renders."""
