"""``scenes data select``: which unlabelled photos to label next (active learning).

``ranking`` orders photos from their probabilities (and features, for ``diverse``);
``command`` runs the run's model over the pool and writes the list (``scenes.selection_file``).
Submodules are imported where they are used: this package imports nothing itself.
"""
