"""Relative-index encoding: the paper's example, round trips, fillers, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from dcsim.compress import sparse
from dcsim.errors import FormatError


def test_eie_example_column():
    # EIE section III: [0,0,1,2,0 x 18,3] with 4-bit z -> v=[1,2,0,3], z=[2,0,15,2].
    column = np.array([0, 0, 1, 2] + [0] * 18 + [3])[:, None]
    m = sparse.encode(column, 4, "csc")
    assert m.code.tolist() == [1, 2, 0, 3]
    assert m.z.tolist() == [2, 0, 15, 2]
    assert m.line_ptr.tolist() == [0, 4]
    assert m.n_fillers == 1
    assert sparse.positions(m).tolist() == [2, 3, 19, 22]


def test_gap_exactly_span_needs_one_filler():
    line = np.array([[0] * 16 + [5]])
    m = sparse.encode(line, 4, "csr")
    assert m.z.tolist() == [15, 0]
    assert m.code.tolist() == [0, 5]


def test_trailing_zeros_and_empty_lines_are_not_stored():
    codes = np.zeros((5, 3), dtype=np.uint8)
    codes[1, 0] = 7
    m = sparse.encode(codes, 2, "csc")
    assert m.line_ptr.tolist() == [0, 1, 1, 1]
    assert m.z.tolist() == [1]


code_matrices = st.integers(1, 8).flatmap(lambda bits: st.tuples(
    st.just(bits),
    hnp.arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)),
               elements=st.sampled_from([0] * 12 + list(range(1, 2 ** min(bits, 4)))))))


@settings(max_examples=150, deadline=None)
@given(code_matrices, st.integers(1, 6), st.sampled_from(sparse.ORDERS))
def test_round_trip(case, index_bits, order):
    _, codes = case
    m = sparse.encode(codes, index_bits, order)
    m.validate()
    assert np.array_equal(sparse.decode(m), codes)
    assert m.n_entries - m.n_fillers == np.count_nonzero(codes)
    assert int(m.z.max(initial=0)) < 2 ** index_bits


@settings(max_examples=60, deadline=None)
@given(code_matrices, st.integers(1, 9), st.integers(1, 5))
def test_interleave_reassembles_rows(case, n_pe, index_bits):
    _, codes = case
    pes = sparse.interleave(codes, n_pe, index_bits)
    assert len(pes) == n_pe
    for pe, m in enumerate(pes):
        assert np.array_equal(sparse.decode(m), codes[pe::n_pe])


def test_all_zero_layer_has_no_entries():
    m = sparse.encode(np.zeros((30, 20), dtype=np.uint8), 3, "csr")
    assert m.n_entries == 0 and m.line_ptr.tolist() == [0] * 31
    assert np.array_equal(sparse.decode(m), np.zeros((30, 20)))


def test_bad_order_and_bits():
    with pytest.raises(FormatError, match=r"^Sparse order must be one of \('csc', 'csr'\), not 'coo'$"):
        sparse.encode(np.zeros((2, 2), dtype=np.uint8), 4, "coo")
    with pytest.raises(FormatError, match=r"^index_bits must be an integer in 1\.\.16, not 0$"):
        sparse.encode(np.zeros((2, 2), dtype=np.uint8), 0)


def test_malformed_encodings_are_refused():
    m = sparse.encode(np.array([[0, 3, 0, 2]]), 2, "csr")
    past_end = sparse.RelIndexMatrix("csr", (1, 4), 2, m.line_ptr, np.array([1, 3], np.uint8), m.code)
    with pytest.raises(FormatError, match="run past the end of a line: position 5 in a line of 4"):
        sparse.decode(past_end)
    bad_ptr = sparse.RelIndexMatrix("csr", (1, 4), 2, np.array([0, 5]), m.z, m.code)
    with pytest.raises(FormatError, match="line_ptr must rise from 0 to the entry count 2"):
        sparse.decode(bad_ptr)
    wide_z = sparse.RelIndexMatrix("csr", (1, 4), 1, m.line_ptr, np.array([1, 2], np.uint8), m.code)
    with pytest.raises(FormatError, match="Relative indices must fit 1 bits, not 2"):
        sparse.decode(wide_z)
