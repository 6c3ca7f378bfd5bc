"""The measuring and inspecting tools of the ``hgtrain`` command: the network benchmark
(:mod:`.benchmark`), time to accuracy (:mod:`.time_to_accuracy`), the transfer benchmark
(:mod:`.transfer`), and the data pipeline's speed and previews (:mod:`.data_benchmark`,
:mod:`.data_preview`).

Nothing is imported here, so that ``python -m`` runs each tool cleanly.
"""
