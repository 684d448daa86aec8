"""rnnkit.data: from files to batches, the first stage of the data path.

- ``textio.py``: reading text safely (UTF-8, one-line errors naming file and line);
- ``tokenizers.py``: char, word and sentencepiece subword tokenizers and their vocabularies;
- ``embeddings.py``: word2vec/GloVe vectors into an embedding;
- ``splits.py``: train/valid/test splits, holding out a validation fraction;
- ``lm_batches.py``: language-model streams (truncated BPTT) and sentence batches;
- ``parallel.py``: sentence pairs for translation, token-budget bucketing;
- ``labelled.py``: labelled texts and tagged sentences (label/text, CSV, CoNLL-U, token<TAB>tag);
- ``long_range.py``: the adding problem and the copy task, generated;
- ``batch_order.py``: the shuffled, bucketed, rank-shared order of batches.

``tinyshakespeare.txt`` (public domain) is the built-in demo's corpus, shipped as package data.
"""
