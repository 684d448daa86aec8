"""Task models built from rnnkit.nn layers: the language model, the encoder-decoder with
attention (and the attention scores), the sequence classifier (and its poolings), the tagger,
and the long-range tasks' model; ``recurrent.py`` builds their layers and initialises them."""
