"""Measuring a trained bundle: the ``evaluate`` loop, what it writes, and ``report``.

Submodules are imported where they are used: this package imports nothing itself.
"""
