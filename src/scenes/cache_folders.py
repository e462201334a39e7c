"""The cache folder's layout, in one place: the name of each kind of entry that lives under
it, beside the module that writes it. ``scenes data cache`` lists and clears by these names;
each writer takes its own name from here, so no room defines another's folder.

The decoded images (``data/cache.py``) sit at the top of the cache folder itself, as
``<24 hex>.npy`` + ``.json``.
"""

FEATURES = "features"  # backbone features, one .npz per backbone (models/features.py)
TEACHER_OUTPUTS = "teacher-outputs"  # distillation teachers' logits (training/teacher_outputs.py)
MODEL_NAMES = "model-names"  # the listing of model names per package (models/listing.py)
TRUSTED_EXPORTS = "trusted_exports.json"  # TorchScript files exported here (serve/formats/trust.py)
