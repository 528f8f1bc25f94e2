"""SQLite's sqllogictest corpus through ddb's request -> apply -> result path.

The whole corpus (select1-5 and evidence/, about 11,200 records) runs in the default suite:
it takes a few seconds. Records meant for other databases (onlyif/skipif) and the records
ddb's policy refuses on purpose (TEMP objects) are skipped and counted with their reason.
"""
from pathlib import Path

import pytest

from .slt import CORPUS, POLICY_TEMP, Counts, Runner, corpus_files

FILES = corpus_files()
TOTAL = Counts()


@pytest.mark.skipif(not CORPUS.exists(), reason=f"sqllogictest corpus not found at {CORPUS}")
@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_corpus_file(path: Path, capsys):
    counts = Runner(path).run()
    TOTAL.add(counts)
    with capsys.disabled():
        print(f"\nsqllogictest {path.name}: {counts.summary()}", end="")
    assert counts.failed == 0, "\n".join(counts.failures[:10])
    assert counts.run > 0
    # the only skips: records for other databases, and ddb's documented TEMP policy
    assert all(r.startswith(("onlyif ", "skipif ")) or r == POLICY_TEMP for r in counts.skipped)


def test_corpus_totals(capsys):
    if not TOTAL.run:
        pytest.skip("corpus files did not run in this session")
    with capsys.disabled():
        print(f"\nsqllogictest TOTAL: {TOTAL.summary()}")
    assert TOTAL.failed == 0
