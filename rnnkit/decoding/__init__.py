"""Decoding, on torch tensors or numpy arrays alike: ``search.py`` (greedy, sampling, beam
search), ``arrays.py`` (the array operations the search needs, for each), ``engine.py`` (a
PyTorch model behind ``engine.call``) and ``onnx_engine.py`` (an export folder's graphs in
onnxruntime behind the same call, without torch)."""
