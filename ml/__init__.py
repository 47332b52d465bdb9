"""Marrow-Find machine-learning core.

Plain PyTorch / torchvision / scikit-image / OpenCV code with no Django import,
usable from a notebook, a command line (``python -m ml``) or a Celery worker.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
