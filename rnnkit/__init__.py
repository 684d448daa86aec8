"""rnnkit: recurrent sequence learning (RNN, LSTM, GRU, BPTT, attention) on PyTorch."""

__version__ = "0.1.0"
