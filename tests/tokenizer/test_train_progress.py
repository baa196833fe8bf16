"""Progress bars change nothing but stderr."""

from __future__ import annotations

from fastllm.tokenizer.training import train_ranks

TEXTS = ["the cat sat on the mat", "the dog sat on the log"] * 50


def test_progress_on_an_iterator_reports_texts(capsys):
    quiet = train_ranks(iter(TEXTS), 300, show_progress=False)
    shown = train_ranks(iter(TEXTS), 300, show_progress=True)
    assert shown == quiet
    assert "100 texts" in capsys.readouterr().err


def test_progress_on_files_gives_the_same_result(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("\n".join(TEXTS), "utf-8")
    assert train_ranks(path, 300, show_progress=True) == train_ranks(path, 300, show_progress=False)


def test_default_shows_progress_only_on_a_terminal(capsys):
    train_ranks(iter(TEXTS), 300)  # stderr is captured here, so not a terminal
    assert capsys.readouterr().err == ""
