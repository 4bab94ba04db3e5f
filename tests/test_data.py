"""Token files, batches, the embedded corpus and the tokenizer / prepare-data path."""

import json
import math
import os
import struct
from collections import Counter

import numpy as np
import pytest

from minigrad.data import BatchStream, DataError, WindowSampler, eval_batches, open_tokens, split_tail, write_tokens
from minigrad.data.corpus import stdlib_documents
from minigrad.data.dataset import open_datasets
from minigrad.data.tokenizer import EOT, load_tokenizer, prepare_data, read_documents
from minigrad.data.tokens import unigram_entropy


def tokens_file(tmp_path, ids, name="d.bin"):
    path = str(tmp_path / name)
    write_tokens(path, np.asarray(ids))
    return path


def test_token_files_are_u32_little_endian(tmp_path):
    path = tokens_file(tmp_path, [1, 258, 70000])
    assert open(path, "rb").read() == struct.pack("<3I", 1, 258, 70000)
    (f,) = open_tokens(path, window=2)
    assert f.tokens.tolist() == [1, 258, 70000]


def test_bad_files_are_named(tmp_path):
    odd = tmp_path / "odd.bin"
    odd.write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match=r"odd\.bin: size 10 bytes is not a multiple of 4"):
        open_tokens(str(odd), window=2)
    with pytest.raises(DataError, match=r"missing\.bin: no such file"):
        open_tokens(str(tmp_path / "missing.bin"), window=2)
    short = tokens_file(tmp_path, range(5), "short.bin")
    with pytest.raises(DataError, match=r"short\.bin: holds 5 tokens, fewer than one training window of 17"):
        open_tokens(short, window=17)
    big = tokens_file(tmp_path, [1, 2, 300, 4], "big.bin")
    with pytest.raises(DataError, match=r"big\.bin: token id 300 is not below vocab_size 300"):
        open_tokens(big, window=2, vocab_size=300)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .bin token files"):
        open_tokens(str(tmp_path / "empty"), window=2)


def test_directory_of_shards_and_train_val_layout(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    tokens_file(shards, range(0, 40), "b.bin")
    tokens_file(shards, range(40, 100), "a.bin")
    files = open_tokens(str(shards), window=9)
    assert [os.path.basename(f.path) for f in files] == ["a.bin", "b.bin"]  # sorted
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    tokens_file(prepared, range(100), "train.bin")
    tokens_file(prepared, range(30), "val.bin")
    d = open_datasets(str(prepared), None, seq_len=8)
    assert len(d.train) == 1 and d.train[0].path.endswith("train.bin") and d.val[0].path.endswith("val.bin")
    assert d.max_token == 99


def test_held_out_tail_when_there_is_no_validation_file(tmp_path):
    path = tokens_file(tmp_path, np.arange(1000))
    train, val = split_tail(open_tokens(path, window=9), 0.05, window=9)
    assert sum(len(f) for f in val) == 50 and train[0].tokens[-1] == 949 and val[0].tokens[0] == 950


def test_windows_are_shifted_pairs_and_an_epoch_visits_each_once(tmp_path):
    n, t = 1001, 10
    files = open_tokens(tokens_file(tmp_path, np.arange(n)), window=t + 1)
    s = WindowSampler(files, seq_len=t, batch_size=4, seed=3)
    per_epoch = s.windows_per_epoch
    starts = []
    while s.epoch == 0:
        x, y = s.next_batch()
        assert x.shape == (4, t) and x.dtype == np.int64
        np.testing.assert_array_equal(y, x + 1)  # the targets are the inputs shifted by one token
        np.testing.assert_array_equal(x, x[:, :1] + np.arange(t))  # each row a contiguous window
        starts += x[:, 0].tolist()
    first_epoch = starts[:per_epoch]
    offset = first_epoch[0] % t
    assert sorted(first_epoch) == list(range(offset, offset + per_epoch * t, t))  # no window twice, none missed
    assert first_epoch != sorted(first_epoch)  # shuffled


def test_same_seed_same_batches_other_seed_other_batches(tmp_path):
    files = open_tokens(tokens_file(tmp_path, np.arange(5000)), window=17)
    a, b, c = (WindowSampler(files, 16, 8, seed=s) for s in (1, 1, 2))
    xa, xb, xc = a.next_batch()[0], b.next_batch()[0], c.next_batch()[0]
    np.testing.assert_array_equal(xa, xb)
    assert not np.array_equal(xa, xc)


def test_cursor_resumes_the_exact_stream_across_epochs(tmp_path):
    files = open_tokens(tokens_file(tmp_path, np.arange(300)), window=9)
    ref = WindowSampler(files, 8, 5, seed=0)
    stream = [ref.next_batch()[0] for _ in range(30)]  # several epochs of 37 windows
    assert ref.epoch >= 3
    part = WindowSampler(files, 8, 5, seed=0)
    for _ in range(11):
        part.next_batch()
    state = json.loads(json.dumps(part.state_dict()))  # survives a trip through meta.json
    resumed = WindowSampler(files, 8, 5, seed=0)
    resumed.load_state_dict(state)
    for k in range(11, 30):
        np.testing.assert_array_equal(resumed.next_batch()[0], stream[k])


@pytest.mark.parametrize("prefetch", [0, 3])
def test_prefetch_gives_the_same_batches_and_the_consumed_cursor(tmp_path, prefetch):
    files = open_tokens(tokens_file(tmp_path, np.arange(2000)), window=17)
    ref = WindowSampler(files, 16, 4, seed=5)
    expected = [(ref.next_batch()[0], ref.state_dict()) for _ in range(12)]
    stream = BatchStream(WindowSampler(files, 16, 4, seed=5), prefetch)
    try:
        for x_ref, cursor in expected:
            np.testing.assert_array_equal(stream.next()[0], x_ref)
            assert stream.state_dict() == cursor  # what was consumed, not how far the thread ran
    finally:
        stream.close()


def test_eval_batches_are_fixed_and_spread_over_the_data(tmp_path):
    files = open_tokens(tokens_file(tmp_path, np.arange(10_000)), window=9)
    a = eval_batches(files, 8, 4, 3)
    b = eval_batches(files, 8, 4, 3)
    assert len(a) == 3 and all(x.shape == (4, 8) for x, _ in a)
    for (xa, ya), (xb, _) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, xa + 1)
    assert a[0][0][0, 0] == 0 and a[-1][0][-1, 0] > 9_000
    tiny = open_tokens(tokens_file(tmp_path, np.arange(20), "t.bin"), window=9)
    (x, _), = eval_batches(tiny, 8, 4, 3)  # fewer windows than a batch: one short batch
    assert x.shape == (2, 8)


def test_unigram_entropy_matches_counting(tmp_path):
    ids = np.random.default_rng(0).zipf(1.5, 5000) % 300
    counts = Counter(ids.tolist())
    expected = -sum(c / len(ids) * math.log(c / len(ids)) for c in counts.values())
    files = open_tokens(tokens_file(tmp_path, ids), window=2)
    assert unigram_entropy(files) == pytest.approx(expected, rel=1e-12)


def test_stdlib_corpus_is_deterministic_and_skips_tests():
    docs = stdlib_documents(max_bytes=200_000)
    again = stdlib_documents(max_bytes=200_000)
    assert [n for n, _ in docs] == [n for n, _ in again] == sorted(n for n, _ in docs)
    assert 0 < sum(len(t) for _, t in docs) <= 200_000
    assert not any(part in ("test", "tests", "site-packages") for n, _ in docs for part in n.split(os.sep))


def test_read_documents_txt_jsonl_and_errors(tmp_path):
    (tmp_path / "a.txt").write_text("hello world")
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n\n{"text": "two", "id": 3}\n')
    docs = read_documents(str(tmp_path))
    assert [t for _, t in docs] == ["hello world", "one", "two"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"bad\.jsonl:2: expected an object with a string \"text\" field"):
        read_documents(str(bad))
    bad.write_text("{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:1: not valid JSON"):
        read_documents(str(bad))


def test_prepare_data_writes_tokenizer_and_bins_that_round_trip(tmp_path):
    docs = [(f"d{i}", f"def f{i}(x):\n    return x * {i} + 'é'\n") for i in range(40)]
    meta = prepare_data(docs, 300, str(tmp_path / "out"), source="test", log=lambda m: None)
    out = tmp_path / "out"
    tok = load_tokenizer(str(out / "tokenizer.json"))
    assert tok.get_vocab_size() == 300 == meta["vocab_size"]
    eot = tok.token_to_id(EOT)
    train = np.fromfile(out / "train.bin", dtype="<u4")
    val = np.fromfile(out / "val.bin", dtype="<u4")
    assert train.max() < 300 and val.max() < 300
    assert (train == eot).sum() == 38 and (val == eot).sum() == 2  # one document in 20 is held out
    # decoding the token files gives back the documents, separated by EOT
    texts = tok.decode(val.tolist(), skip_special_tokens=False).split(EOT)
    assert texts[:2] == [docs[19][1], docs[39][1]]
    assert meta["train_tokens"] == len(train) and meta["unigram_entropy_nats"] > 0
    with pytest.raises(ValueError, match="too small"):
        prepare_data(docs, 100, str(tmp_path / "small"), log=lambda m: None)


def test_prepare_data_cli(tmp_path):
    import train

    (tmp_path / "c.txt").write_text("the cat sat on the mat. " * 200)
    assert train.main(["prepare-data", "--text", str(tmp_path / "c.txt"), "--vocab-size", "280", "--seq-len", "8",
                       "--output", str(tmp_path / "d")]) == 0
    assert sorted(os.listdir(tmp_path / "d")) == ["meta.json", "tokenizer.json", "train.bin", "val.bin"]
    assert train.main(["prepare-data", "--text", str(tmp_path / "nope.txt"), "--output", str(tmp_path / "e")]) == 2


def test_sharded_samplers_take_disjoint_slices_of_the_larger_batch(tmp_path):
    path = tokens_file(tmp_path, np.arange(5000) % 997)
    files = open_tokens(path, window=17)
    whole = WindowSampler(files, 16, 6, seed=3)
    shards = [WindowSampler(files, 16, 2, seed=3, shard=(r, 3)) for r in range(3)]
    for _ in range(100):  # across an epoch boundary (about 312 windows an epoch, 6 a step)
        x, y = whole.next_batch()
        parts = [s.next_batch() for s in shards]
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
        assert all(s.state_dict() == whole.state_dict() for s in shards)
