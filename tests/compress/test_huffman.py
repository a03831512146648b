"""Tests of dcsim.compress.huffman: optimal lengths, canonical codes, round trips, errors."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dcsim.compress import huffman
from dcsim.errors import ConfigError, FormatError


def brute_force_best(counts, max_len):
    """(minimum coded size, least longest code among the codes of that size) over all
    prefix codes with lengths 1..max_len.

    An optimal code never gives a rarer symbol a shorter code (swapping would not
    cost more, nor change the longest code), so only non-increasing lengths over
    ascending counts are tried.
    """
    used = sorted(int(c) for c in counts if c > 0)
    best = None
    for lens in itertools.combinations_with_replacement(range(max_len, 0, -1), len(used)):
        if sum(2.0 ** -l for l in lens) <= 1:
            cand = (sum(c * l for c, l in zip(used, lens)), max(lens))
            best = cand if best is None else min(best, cand)
    return best


def stream_strategy(max_alphabet=300):
    """(symbols, alphabet_size) with a chosen shape: empty, constant, skewed, uniform."""
    return st.tuples(
        st.integers(1, max_alphabet), st.integers(0, 3000),
        st.sampled_from(["uniform", "constant", "skewed", "geometric"]),
        st.integers(0, 2 ** 32 - 1))


def make_stream(alphabet, n, shape, seed):
    rng = np.random.default_rng(seed)
    if shape == "constant":
        return np.full(n, rng.integers(alphabet), dtype=np.int64)
    if shape == "skewed":
        p = np.exp(-np.abs(np.arange(alphabet) - alphabet / 2) / max(alphabet / 16, 0.5))
        return rng.choice(alphabet, size=n, p=p / p.sum())
    if shape == "geometric":
        return np.minimum(rng.geometric(0.05, size=n) - 1, alphabet - 1)
    return rng.integers(0, alphabet, size=n)


@settings(max_examples=120, deadline=None)
@given(stream_strategy())
def test_round_trip_and_optimal_size(params):
    alphabet, n, shape, seed = params
    print("alphabet, n, shape, seed =", params)
    symbols = make_stream(alphabet, n, shape, seed)
    stream = huffman.HuffmanStream.compress(symbols, alphabet)
    assert stream.lengths.shape == (alphabet,)
    assert np.array_equal(stream.decode(), symbols)
    counts = np.bincount(symbols, minlength=alphabet)
    assert stream.n_bits == int(np.sum(counts * stream.lengths.astype(np.int64)))
    assert len(stream.data) == (stream.n_bits + 7) // 8
    if n and huffman.huffman_depth(counts) <= huffman.MAX_LEN:
        assert stream.n_bits == huffman.optimal_bits(counts)
    packed = huffman.pack_lengths(stream.lengths)
    lengths, used = huffman.unpack_lengths(packed + b"\xff", alphabet)
    assert used == len(packed)
    assert np.array_equal(lengths, stream.lengths)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 2 ** 20), min_size=1, max_size=400), st.integers(1, 16))
def test_lengths_are_optimal_and_kraft(counts, max_len):
    counts = np.array(counts, dtype=np.int64)
    used = int(np.count_nonzero(counts))
    if used > 2 ** max_len:
        with pytest.raises(ConfigError, match="max_len must be at least"):
            huffman.code_lengths(counts, max_len)
        return
    lengths = huffman.code_lengths(counts, max_len).astype(np.int64)
    assert np.array_equal(lengths > 0, counts > 0)
    assert lengths.max(initial=0) <= max_len
    if used >= 2:
        assert huffman.kraft_sum(lengths) == 1.0
        cost = int(np.sum(counts * lengths))
        if huffman.huffman_depth(counts) <= max_len:
            assert cost == huffman.optimal_bits(counts)
        else:
            assert cost >= huffman.optimal_bits(counts)
    elif used == 1:
        assert lengths.max() == 1


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 1000), min_size=2, max_size=6), st.integers(1, 4))
def test_length_limited_matches_brute_force(counts, max_len):
    counts = np.array(counts, dtype=np.int64)
    if len(counts) > 2 ** max_len:
        return
    lengths = huffman.code_lengths(counts, max_len).astype(np.int64)
    assert int(np.sum(counts * lengths)) == brute_force_best(counts, max_len)[0]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.integers(0, 2), min_size=1, max_size=7),  # ties decide depth
                 st.lists(st.integers(0, 1000), min_size=1, max_size=7)))
def test_optimal_bits_and_depth_match_brute_force(counts):
    counts = np.array(counts, dtype=np.int64)
    used = int(np.count_nonzero(counts))
    if used == 0:
        assert huffman.optimal_bits(counts) == huffman.huffman_depth(counts) == 0
        return
    # an optimal code of n symbols needs no code longer than n - 1 bits (1 for one)
    assert (huffman.optimal_bits(counts), huffman.huffman_depth(counts)) == \
        brute_force_best(counts, max(1, used - 1))


def test_optimal_bits_known_values_and_errors():
    assert huffman.optimal_bits(np.array([0, 7, 0])) == 7  # one symbol: 1 bit each
    assert huffman.huffman_depth(np.array([0, 7, 0])) == 1
    assert huffman.optimal_bits(np.array([5, 5, 5, 5])) == 40
    fib = np.array([1, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    assert huffman.optimal_bits(fib) == int(np.sum(fib * np.r_[10, 10, 9:0:-1]))
    assert huffman.huffman_depth(fib) == 10
    with pytest.raises(FormatError, match=r"^counts must be non-negative, not -1$"):
        huffman.optimal_bits(np.array([3, -1]))
    with pytest.raises(FormatError, match=r"^counts must be a 1-D integer array, not "
                                          r"1-D float64$"):
        huffman.huffman_depth(np.array([1.0, 2.0]))


def test_known_length_limited_code():
    # Fibonacci-like weights: Huffman wants depth 10; at 4 bits, 8 of the 11 symbols
    # must share the deepest level.
    counts = np.array([1, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
    assert huffman.code_lengths(counts).tolist() == [10, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    limited = huffman.code_lengths(counts, 4).astype(np.int64)
    assert limited.max() == 4 and huffman.kraft_sum(limited) == 1.0
    assert int(np.sum(counts * limited)) == brute_force_best(counts, 4)[0] == 2688


def test_edge_cases_of_lengths():
    assert huffman.code_lengths(np.zeros(5, dtype=np.int64)).tolist() == [0] * 5
    assert huffman.code_lengths(np.array([0, 7, 0])).tolist() == [0, 1, 0]
    assert huffman.code_lengths(np.array([3, 9])).tolist() == [1, 1]
    full = huffman.code_lengths(np.ones(2 ** 16, dtype=np.int64))
    assert full.min() == full.max() == 16


def test_canonical_codes_follow_rfc1951():
    # RFC 1951 section 3.2.2's example: lengths (3,3,3,3,3,2,4,4) for ABCDEFGH.
    codes = huffman.canonical_codes(np.array([3, 3, 3, 3, 3, 2, 4, 4]))
    assert codes.tolist() == [0b010, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111]


def test_encode_is_msb_first():
    lengths = np.array([1, 2, 2])  # codes 0, 10, 11
    data, n_bits = huffman.encode(np.array([1, 0, 2, 2, 0]), lengths)
    assert n_bits == 8 and data == bytes([0b10011110])
    data, n_bits = huffman.encode(np.array([2, 0]), lengths)
    assert n_bits == 3 and data == bytes([0b11000000])


def test_large_alphabet_round_trip():
    seed = 1234
    rng = np.random.default_rng(seed)
    # 4096 symbols spread over the whole 16-bit alphabet, so Huffman fits 16 bits.
    symbols = rng.integers(0, 4096, size=200_000) * 16 + 15
    stream = huffman.HuffmanStream.compress(symbols, 2 ** 16)
    assert np.array_equal(stream.decode(), symbols)
    counts = np.bincount(symbols, minlength=2 ** 16)
    assert huffman.huffman_depth(counts) <= 16
    assert stream.n_bits == huffman.optimal_bits(counts)
    packed = huffman.pack_lengths(stream.lengths)
    assert np.array_equal(huffman.unpack_lengths(packed, 2 ** 16)[0], stream.lengths)


def test_decode_matches_reference_decoder():
    seed = 7
    symbols = make_stream(40, 2000, "skewed", seed)
    lengths, data, _ = huffman.compress(symbols, 40, max_len=9)
    assert np.array_equal(huffman.decode_reference(data, 2000, lengths), symbols)
    assert np.array_equal(huffman.decode(data, 2000, lengths), symbols)


def test_decode_dtype():
    lengths, data, n_bits = huffman.compress(np.array([0, 299, 5]), 300)
    out = huffman.decode(data, 3, lengths, n_bits=n_bits, dtype=np.uint16)
    assert out.dtype == np.uint16 and out.tolist() == [0, 299, 5]
    with pytest.raises(FormatError, match="dtype must be an integer type holding symbols "
                                          "up to 299, not uint8"):
        huffman.decode(data, 3, lengths, dtype=np.uint8)


def test_truncated_stream_raises_at_every_cut():
    seed = 99
    symbols = make_stream(20, 500, "skewed", seed)
    lengths, data, n_bits = huffman.compress(symbols, 20)
    for cut in range(len(data)):
        with pytest.raises(FormatError):
            huffman.decode(data[:cut], 500, lengths, n_bits=8 * cut)
    with pytest.raises(FormatError, match="must end at bit"):
        huffman.decode(data + b"\x00", 500, lengths, n_bits=n_bits + 8)


def test_n_symbols_is_bounded_by_data():
    lengths = np.array([1, 1])
    with pytest.raises(FormatError, match=r"n_symbols must be at most the 16 bits of data"):
        huffman.decode(b"\x00\x00", 17, lengths)
    with pytest.raises(FormatError, match=r"n_symbols must be at most the 8 bits of data"):
        huffman.decode(b"\x00", 2 ** 40, lengths)


def test_invalid_code_pattern_raises():
    # Single used symbol: code "0"; a "1" bit is no code.
    with pytest.raises(FormatError, match="no code"):
        huffman.decode(b"\x80", 1, np.array([0, 1]))


def test_bad_inputs_raise():
    with pytest.raises(FormatError, match="Kraft"):
        huffman.decode(b"\x00", 1, np.array([1, 1, 1]))
    with pytest.raises(FormatError, match=r"code lengths must be in 0\.\.16, not 0\.\.17"):
        huffman.canonical_codes(np.array([0, 17]))
    with pytest.raises(FormatError, match="every symbol must have a code"):
        huffman.encode(np.array([0, 2]), np.array([1, 1, 0]))
    with pytest.raises(ConfigError, match=r"max_len must be an integer in 1\.\.16, not 0"):
        huffman.code_lengths(np.array([1, 2]), 0)
    with pytest.raises(FormatError, match=r"symbols must be in 0\.\.3, not 0\.\.4"):
        huffman.compress(np.array([0, 4]), 4)


def test_length_table_errors():
    lengths = np.array([3, 3, 0, 0, 0, 2, 1, 16, 16], dtype=np.uint8)
    # Kraft over-full on purpose is refused when packing.
    with pytest.raises(FormatError, match="Kraft"):
        huffman.pack_lengths(lengths)
    lengths = huffman.code_lengths(np.array([5, 5, 0, 0, 0, 9, 1000, 1, 1]))
    packed = huffman.pack_lengths(lengths)
    for cut in range(len(packed)):
        with pytest.raises(FormatError, match="truncated"):
            huffman.unpack_lengths(packed[:cut], 9)
    with pytest.raises(FormatError, match="zero run must end within the 4 symbols"):
        huffman.unpack_lengths(bytes([0x04, 0x00]), 4)
    with pytest.raises(FormatError, match="at most 16, not 17"):
        huffman.unpack_lengths(bytes([0xF2]), 1)
