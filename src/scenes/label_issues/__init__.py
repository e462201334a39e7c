"""``scenes data issues``: training images whose label looks wrong, ranked (cleanlab).

Submodules are imported where they are used: this package imports nothing itself.
"""
