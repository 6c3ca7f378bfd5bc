"""The ``hgtrain`` command: the entry point and the tools' table (:mod:`.main`), Lightning's
training subcommands (:mod:`.lightning_cli`) and the tools' argument parsing (:mod:`.arguments`).

Nothing is imported here, so that ``hgtrain --version`` answers without loading torch.
"""
