import os
import stat
import sys

import pandas as pd
import pytest

from vlmflow.io import atomic_path, log_to, write_parquet


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_outputs_get_the_mode_of_a_new_file_under_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
        with atomic_path(tmp_path / "fig.csv") as tmp:
            tmp.write_text("a\n1\n")
    finally:
        os.umask(old)
    for name in ("t.parquet", "fig.csv"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def test_log_to_tees_stdout_and_stderr(tmp_path, capsys):
    log = tmp_path / "logs" / "rule.log"
    console = sys.stderr
    with log_to(log):
        assert sys.stderr.isatty() == console.isatty()  # what tqdm & co ask of the stream: the console's
        print("progress on stdout")
        print("warning on stderr", file=sys.stderr)
    text = log.read_text()
    assert "progress on stdout" in text and "warning on stderr" in text
    out, err = capsys.readouterr()  # the console still gets both
    assert "progress on stdout" in out and "warning on stderr" in err


def test_log_to_writes_the_traceback_and_reraises(tmp_path):
    log = tmp_path / "rule.log"
    with pytest.raises(RuntimeError, match="boom"), log_to(log):
        raise RuntimeError("boom")
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom" in text
