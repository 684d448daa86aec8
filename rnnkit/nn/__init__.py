"""rnnkit.nn: recurrent cells and layers, drop-in replacements of torch.nn's, plus variants.

- ``cells.py``: one time step of RNN, LSTM (peephole) and GRU (reset before/after, hard sigmoid).
- ``recurrence.py``: running a step over time (stacked, bidirectional, variable lengths).
- ``layers.py``: ``RNN``, ``LSTM``, ``GRU`` with torch.nn's interface and two paths
  (fused/explicit).
- ``scan.py``: the log-space parallel scan of ``h_t = a_t h_{t-1} + b_t`` (Heinsen 2023), chunked.
- ``minrnn.py``: ``MinGRU``, ``MinLSTM`` (Feng et al. 2024) and their cells ``MinGRUCell``,
  ``MinLSTMCell``: gates from x_t alone, trained as one scan, decoded step by step.
"""

from rnnkit.nn.cells import (
    CellWeights,
    GRUCell,
    GRUStep,
    LSTMCell,
    LSTMStep,
    RNNCell,
    RNNStep,
    hard_sigmoid,
)
from rnnkit.nn.layers import GRU, LSTM, RNN
from rnnkit.nn.minrnn import MinGRU, MinGRUCell, MinLSTM, MinLSTMCell

__all__ = [
    "RNN",
    "LSTM",
    "GRU",
    "RNNCell",
    "LSTMCell",
    "GRUCell",
    "RNNStep",
    "LSTMStep",
    "GRUStep",
    "CellWeights",
    "hard_sigmoid",
    "MinGRU",
    "MinLSTM",
    "MinGRUCell",
    "MinLSTMCell",
]
