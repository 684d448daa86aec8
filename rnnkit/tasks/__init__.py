"""Tasks: how each kind of data meets a model and the trainer (lm: language modelling)."""
