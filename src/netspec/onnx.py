"""``netspec.onnx``: the ONNX export's public API (the ``onnx`` extra; see :mod:`netspec.export.onnx`).

>>> model = netspec.onnx.build_model(net, net.initialize())        # doctest: +SKIP
>>> netspec.onnx.save(net, params, "model.onnx")                    # doctest: +SKIP
>>> params = netspec.onnx.read_file(net, "model.onnx")              # doctest: +SKIP
"""

from netspec.export.onnx import OPSET, build_model, layouts, read_file, read_model, save

__all__ = ["OPSET", "build_model", "layouts", "read_file", "read_model", "save"]
