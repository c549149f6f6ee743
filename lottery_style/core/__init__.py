"""The bottom layer: config schemas and errors, the ``conf/`` folder, optional extras, atomic file writes.

Every other package may import from here; nothing here imports another part of
``lottery_style``.
"""
