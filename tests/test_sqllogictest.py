"""SQLite's sqllogictest corpus through ddb's request -> apply -> result path.

The whole corpus (select1-5 and evidence/, about 11,200 records) runs in the default suite:
it takes a few seconds. Records meant for other databases (onlyif/skipif) and the records
ddb's policy refuses on purpose (TEMP objects) are skipped and counted with their reason.
"""
import functools
from pathlib import Path

import pytest

from tests.slt import CORPUS, POLICY_TEMP, Counts, Runner, corpus_files

FILES = corpus_files()
needs_corpus = pytest.mark.skipif(not CORPUS.exists(), reason=f"sqllogictest corpus not found at {CORPUS}")


@functools.lru_cache(maxsize=None)
def counts_of(path: Path) -> Counts:
    """One file's run (each on a fresh state machine: the same counts whoever asks first)."""
    return Runner(path).run()


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_corpus_file(path: Path, capsys):
    counts = counts_of(path)
    with capsys.disabled():
        print(f"\nsqllogictest {path.name}: {counts.summary()}", end="")
    assert counts.failed == 0, "\n".join(counts.failures[:10])
    assert counts.run > 0
    # the only skips: records for other databases, and ddb's documented TEMP policy
    assert all(r.startswith(("onlyif ", "skipif ")) or r == POLICY_TEMP for r in counts.skipped)


@needs_corpus
def test_corpus_totals(capsys):
    total = Counts()
    for path in FILES:                        # already run by test_corpus_file, or run here
        total.add(counts_of(path))
    with capsys.disabled():
        print(f"\nsqllogictest TOTAL: {total.summary()}")
    assert total.failed == 0
    assert total.run > 11_000                 # the whole corpus, not a part of it
