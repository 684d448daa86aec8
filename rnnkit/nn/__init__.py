"""rnnkit.nn: recurrent cells and layers, drop-in replacements of torch.nn's, plus variants.

- ``cells.py``: one time step of RNN, LSTM (peephole) and GRU (reset before/after, hard sigmoid).
- ``recurrence.py``: running a step over time (stacked, bidirectional, variable lengths).
- ``layers.py``: ``RNN``, ``LSTM``, ``GRU`` with torch.nn's interface and two paths
  (fused/explicit).
"""

from .cells import CellWeights, GRUCell, GRUStep, LSTMCell, LSTMStep, RNNCell, RNNStep, hard_sigmoid
from .layers import GRU, LSTM, RNN

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
]
