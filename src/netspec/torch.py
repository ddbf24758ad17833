"""``netspec.torch``: the PyTorch export's public API (the ``torch`` extra; see :mod:`netspec.export.torch`).

>>> module = netspec.torch.to_module("specs/resnet18-cifar.yaml")      # doctest: +SKIP
>>> netspec.torch.load_into(my_resnet, "specs/resnet18-cifar.yaml",
...                         mapping={"stem.weight": "conv1.weight"})              # doctest: +SKIP
>>> netspec.torch.fill_(fsdp_module.fc.weight, net, "fc.weights", perm=(1, 0))  # doctest: +SKIP
"""

from netspec.export.torch import fill_, load_into, read_file, read_state_dict, save, state_dict, to_module

__all__ = ["fill_", "load_into", "read_file", "read_state_dict", "save", "state_dict", "to_module"]
