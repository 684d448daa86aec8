"""Sphinx's search, for a site in English and Vietnamese: a word matches with or without its
diacritics.

Vietnamese readers often type without tones ("hoi tiep" for "hồi tiếp"), and a search box should
find the page either way. Sphinx indexes each word through the search language's ``stem`` (in
Python) and looks a query's words up through its ``Stemmer`` (in JavaScript, in the browser), so
both fold the word the same way first: Unicode NFD, combining marks dropped, đ -> d, lower case.
Then the English stemmer runs as usual, so English words keep their stemming ("gates" finds
"gate"). The query splitter folds the whole query first, so a word typed with combining marks
(NFD, as some keyboards send it) is not split at its marks.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import sphinx.search
from sphinx.search.en import SearchEnglish


def fold(word: str) -> str:
    """'Hồi tiếp' -> 'hoi tiep', 'Đạo hàm' -> 'dao ham'."""
    decomposed = unicodedata.normalize("NFD", word.replace("đ", "d").replace("Đ", "D"))
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


_FOLD_JS = r"""
var rnnkitFold = (w) =>
  w.replace(/đ/g, "d").replace(/Đ/g, "D").normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
"""

_MINIFIED = Path(sphinx.search.__file__).parent / "minified-js"


class SearchEnglishVietnamese(SearchEnglish):
    lang = "en-vi"
    language_name = "English and Vietnamese"
    # The stemmer is written out whole below (the English one, wrapped), not copied as a file.
    js_stemmer_rawcode = ""
    # language_data.js holds the stemmer's code, then the splitter's: rnnkitFold is defined.
    js_splitter_code = r"""
var splitQuery = (query) =>
  rnnkitFold(query)
    .split(/[^\p{Letter}\p{Number}_\p{Emoji_Presentation}]+/gu)
    .filter((term) => term);
"""

    @property
    def js_stemmer_code(self) -> str:  # type: ignore[override]
        english = "\n".join(
            (_MINIFIED / name).read_text(encoding="utf-8")
            for name in ("base-stemmer.js", "english-stemmer.js")
        )
        return (
            english
            + _FOLD_JS
            + """
var Stemmer = function () {
  const english = new EnglishStemmer();
  this.stemWord = (w) => english.stemWord(rnnkitFold(w));
};
window.Stemmer = Stemmer;
"""
        )

    def split(self, input: str) -> list[str]:
        return super().split(unicodedata.normalize("NFC", input))

    def stem(self, word: str) -> str:
        return super().stem(fold(word))
