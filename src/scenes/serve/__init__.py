"""Serving a trained bundle: the Predictor (PyTorch or ONNX Runtime), heatmaps, and the
``predict``, ``app`` and ``export`` commands.

Submodules are imported where they are used: this package imports nothing itself.
"""
