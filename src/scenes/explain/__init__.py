"""``scenes explain``: heatmap figures of where the model saw its class.

Submodules are imported where they are used: this package imports nothing itself.
"""
