"""rnnkit.data.labelled: the four readers, format detection, splits, the label vocabulary, and a
one-line error naming file and line for every kind of malformed input."""

from __future__ import annotations

import pytest

from rnnkit.data.labelled import (
    LabelledText,
    LabelVocabulary,
    TaggedSentence,
    read_classified,
    read_conllu,
    read_csv,
    read_label_text,
    read_tagged,
    read_token_tag,
    resolve_format,
)
from rnnkit.data.splits import read_splits
from rnnkit.errors import UserError
from rnnkit.tasks import registry

DataConfig = registry.section("data")

CONLLU = """# newdoc id = x
# text = I don't know.
1\tI\tI\tPRON\tPRP\t_\t3\tnsubj\t_\t_
2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_
2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_
3\tn't\tnot\tPART\tRB\t_\t4\tadvmod\t_\t_
3.1\tgone\tgo\tVERB\tVBN\t_\t_\t_\t2:conj\t_
4\tknow\tknow\tVERB\tVB\t_\t0\troot\t_\tSpaceAfter=No

# text = Hi
1\tHi\thi\tINTJ\tUH\t_\t0\troot\t_\t_
"""


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_label_text_takes_a_tab_or_the_first_space(tmp_path):
    path = write(tmp_path, "a.txt", "1 a fine film\n\npos\tgood ,  tab separated\n0\tx\n")
    assert read_label_text(path) == [
        LabelledText("1", "a fine film", 1),
        LabelledText("pos", "good ,  tab separated", 3),
        LabelledText("0", "x", 4),
    ]


def test_csv_reads_named_columns_with_quotes_and_counts_lines(tmp_path):
    path = write(tmp_path, "a.csv", 'id,text,label\n1,"a, quoted\nline",pos\n\n2,plain,neg\n')
    assert read_csv(path, "label", "text") == [
        LabelledText("pos", "a, quoted\nline", 2),
        LabelledText("neg", "plain", 5),
    ]
    assert read_classified(path, "auto") == read_csv(path, "label", "text")


def test_conllu_skips_comments_multiword_tokens_and_empty_nodes(tmp_path):
    path = write(tmp_path, "a.conllu", CONLLU)
    assert read_conllu(path) == [
        TaggedSentence(["I", "do", "n't", "know"], ["PRON", "AUX", "PART", "VERB"], 3),
        TaggedSentence(["Hi"], ["INTJ"], 11),
    ]
    assert read_tagged(path, "auto", "xpos")[0].tags == ["PRP", "VBP", "RB", "VB"]


def test_token_tag_sentences_are_separated_by_blank_lines(tmp_path):
    path = write(tmp_path, "a.tsv", "John\tB-PER\nruns\tO\n\n\nParis\tB-LOC\n")
    assert read_token_tag(path) == [
        TaggedSentence(["John", "runs"], ["B-PER", "O"], 1),
        TaggedSentence(["Paris"], ["B-LOC"], 5),
    ]


def test_format_follows_the_extension_then_the_task():
    assert resolve_format("auto", "x.CSV", "label_text") == "csv"
    assert resolve_format("auto", "x.conllu", "token_tag") == "conllu"
    assert resolve_format("auto", "x.txt", "label_text") == "label_text"
    assert resolve_format("auto", "x.txt", "token_tag") == "token_tag"
    assert resolve_format("csv", "x.txt", "label_text") == "csv"


@pytest.mark.parametrize(
    "name, text, reader, message",
    [
        ("a.txt", "1 ok\n0\n", read_label_text, "a.txt:2: missing text after the label '0'"),
        ("a.txt", "1 ok\n\tno label here\n", read_label_text, "a.txt:2: missing label"),
        (
            "a.csv",
            "label,text\npos,fine\n,empty\n",
            lambda p: read_csv(p, "label", "text"),
            "a.csv:3: missing label",
        ),
        (
            "a.csv",
            "label,text\npos,fine,extra\n",
            lambda p: read_csv(p, "label", "text"),
            "a.csv:2: 3 fields, the header has 2",
        ),
        (
            "a.csv",
            "label,sentence\npos,fine\n",
            lambda p: read_csv(p, "label", "text"),
            "a.csv:1: no column 'text' (data.text_column) in the header; "
            "columns: 'label', 'sentence'",
        ),
        (
            "a.conllu",
            CONLLU.replace("2\tdo\tdo\tAUX\tVBP\t_\t3\taux\t_\t_", "2\tdo\tdo\tAUX"),
            read_conllu,
            "a.conllu:5: expected 10 tab-separated CoNLL-U columns, found 4",
        ),
        (
            "a.conllu",
            CONLLU.replace("4\tknow", "5\tknow"),
            read_conllu,
            "a.conllu:8: word ID '5', expected 4",
        ),
        (
            "a.conllu",
            CONLLU.replace("INTJ", "_"),
            read_conllu,
            "a.conllu:11: no UPOS tag (column 4)",
        ),
        ("a.tsv", "John\tB-PER\nruns\n", read_token_tag, "a.tsv:2: token 'runs' has no tag"),
        ("a.tsv", "John\tB-PER\tI-PER\n", read_token_tag, "a.tsv:1: 2 tags for one token"),
        ("a.tsv", "John\tB-PER\n\tO\n", read_token_tag, "a.tsv:2: empty token"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, name, text, reader, message):
    path = write(tmp_path, name, text)
    with pytest.raises(UserError) as error:
        reader(path)
    assert str(error.value).startswith(
        str(tmp_path / message.split(":")[0]) + ":" + message.split(":", 1)[1]
    )
    assert "\n" not in str(error.value)


def test_a_tagging_format_for_classification_is_refused(tmp_path):
    with pytest.raises(UserError, match="is for tagging"):
        read_classified(write(tmp_path, "a.txt", "1 x\n"), "conllu")
    with pytest.raises(UserError, match="is for classification"):
        read_tagged(write(tmp_path, "b.txt", "x\tN\n"), "csv")


def test_splits_hold_out_the_last_valid_fraction(tmp_path):
    path = write(tmp_path, "a.txt", "".join(f"{i % 2} word{i}\n" for i in range(10)))
    splits = read_splits(DataConfig(train=str(path), valid_fraction=0.2), read_label_text)
    assert [e.text for e in splits["valid"]] == ["word8", "word9"] and len(splits["train"]) == 8
    with pytest.raises(UserError, match="data.train"):
        read_splits(DataConfig(), read_label_text)


def test_label_vocabulary_is_sorted_and_round_trips_through_json(tmp_path):
    labels = LabelVocabulary.build(["pos", "neg", "pos", "neutral"])
    assert labels.names == ["neg", "neutral", "pos"] and labels.index["pos"] == 2
    labels.save(tmp_path / "labels.json")
    assert LabelVocabulary.load(tmp_path / "labels.json").names == labels.names
    write(tmp_path, "bad.json", '{"labels": "pos"}')
    with pytest.raises(UserError, match="bad.json: not a label file"):
        LabelVocabulary.load(tmp_path / "bad.json")
