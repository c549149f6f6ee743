"""The engine: the IMP driver (:mod:`.lottery`), the method strategies (:mod:`.methods`) and what a run needs
around its fits (rewinding, evaluation, loggers, checkpoints, DDP ranks, launching, resuming, config checks).

It builds on ``models``, ``pruning``, ``data`` and ``tickets``, never the reverse.
"""
