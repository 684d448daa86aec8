"""Export to ONNX (``pip install "rnnkit[onnx]"``): ``onnx_recurrent`` writes the recurrent
layers as ONNX's native RNN, LSTM and GRU ops."""
