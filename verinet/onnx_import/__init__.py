"""ONNX -> IR import: one converter per op, an explicit registry, an equivalence check.

Public API::

    load_onnx(path, *, check=True, n_check_points=16, seed=0, input_box=None) -> ImportedModel
    import_model(model, ...) -> ImportedModel
    onnx_evaluator(model) -> Callable[[np.ndarray], np.ndarray]
"""

from verinet.onnx_import.check import onnx_evaluator
from verinet.onnx_import.loader import ImportedModel, import_model, load_onnx
from verinet.onnx_import.registry import CONVERTERS

__all__ = ["CONVERTERS", "ImportedModel", "import_model", "load_onnx", "onnx_evaluator"]
