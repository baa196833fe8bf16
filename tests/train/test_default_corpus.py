from fastllm.demos.pretraining import default_documents, pydoc_topics, write_default_corpus
from fastllm.train.prepare import DOCUMENT_SEPARATOR, file_chunks


def test_default_corpus_is_deterministic_and_substantial():
    first, second = default_documents(), default_documents()
    assert first == second
    assert len(first) > 50
    assert sum(map(len, first)) > 500_000
    assert all(isinstance(d, str) and d for d in first)


def test_default_corpus_contains_pydoc_topics_and_docstrings():
    docs = default_documents()
    topics = pydoc_topics()
    assert docs[: len(topics)] == topics
    assert any(d.startswith("Module json\n") and "JSON" in d for d in docs)


def test_written_corpus_reads_back_as_the_same_documents(tmp_path):
    docs = default_documents()[:30]
    path = tmp_path / "corpus.txt"
    import fastllm.demos.pretraining as dc

    path.write_text(DOCUMENT_SEPARATOR.join(docs), encoding="utf-8")
    rebuilt, current = [], []
    for chunk, ends in file_chunks(path, 1000):
        current.append(chunk)
        if ends:
            rebuilt.append("".join(current))
            current = []
    # every document but the last got the newline that ends the line before the separator
    assert rebuilt == [d + "\n" for d in docs[:-1]] + [docs[-1]]
    assert write_default_corpus(tmp_path / "all.txt").stat().st_size > 500_000
