"""The names of the recurrent variants ``rnnkit.nn`` implements, for the config keys that choose
them (``models/keys.py``) and the cells that compute them (``nn/cells.py``): one list each, in a
module that imports nothing, so a config is checked where torch is not installed."""

RNN_NONLINEARITIES = ("tanh", "relu")  # model.nonlinearity (rnn)
GRU_RESETS = ("after", "before")  # model.reset: r after W_hn h (cuDNN), or before (Cho 2014)
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")  # model.gate (gru)
BPTT_MODES = ("handwritten", "autograd")  # model.bptt: how the explicit path is differentiated
