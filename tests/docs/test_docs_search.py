"""The site search's folding (fast; the chromium test in test_docs_site.py runs it in a browser):
the index and the query fold a Vietnamese word the same way, with or without its diacritics."""

from __future__ import annotations

import pytest
from rnnkit_docs.search import SearchEnglishVietnamese, fold


@pytest.mark.parametrize(
    ("word", "folded"),
    [
        ("hồi tiếp", "hoi tiep"),
        ("Đạo hàm", "dao ham"),
        ("cổng quên", "cong quen"),
        ("LSTM", "lstm"),
    ],
)
def test_fold(word, folded):
    assert fold(word) == folded


def test_index_words_match_with_or_without_diacritics():
    language = SearchEnglishVietnamese({})
    accented = [language.stem(w) for w in language.split("Tiêu biến gradient, bùng nổ gradient")]
    plain = [language.stem(w) for w in language.split("tieu bien gradient, bung no gradient")]
    assert accented == plain


def test_english_words_are_still_stemmed():
    language = SearchEnglishVietnamese({})
    assert language.stem("gates") == language.stem("gate")


def test_decomposed_input_is_one_word():
    """A word typed as letters and combining marks (NFD) is indexed as the composed one."""
    language = SearchEnglishVietnamese({})
    assert language.split("ho\u0302\u0300i") == ["hồi"]
