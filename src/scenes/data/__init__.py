"""Data: discover folders, decode and cache images, split, augment, load.

Submodules are imported where they are used (``from scenes.data.cache import ...``): this
package imports nothing heavy itself, so ``scenes data stats`` never pays for scikit-learn.
"""
