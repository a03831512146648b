"""Packed data layouts shared by the engine's gateware and its image compiler."""

from __future__ import annotations

import enum

import numpy as np
from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from dcsim.hw.config import EngineConfig, bits_for
from dcsim.hw.conv import GEOM_BITS


class Target(enum.IntEnum):
    """What a load word writes (the ``target`` field of :func:`load_layout`)."""

    SPARSE = 0      # sparse-matrix SRAM word of one PE
    POINTER = 1     # column pointer (even/odd bank chosen by the address's low bit)
    CODEBOOK = 2    # codebook value, address = layer * 2**code_bits + code
    BIAS = 3        # bias in the activation format (the PE shifts it left by frac_bits)
    ACT = 4         # input activation, address = local index in bank 0
    DESC = 5        # layer descriptor, address = layer (the top keeps the table)


TARGET_BITS = 3


def entry_layout(config: EngineConfig) -> data.StructLayout:
    """One sparse entry: relative row index ``z`` (low bits), then the weight ``code``."""
    return data.StructLayout({"z": unsigned(config.idx_bits), "code": unsigned(config.code_bits)})


def word_layout(config: EngineConfig) -> data.ArrayLayout:
    """One sparse-matrix SRAM word: ``entries_per_word`` entries, slot 0 in the low bits."""
    return data.ArrayLayout(entry_layout(config), config.entries_per_word)


def act_layout(config: EngineConfig) -> data.StructLayout:
    """A broadcast activation ``(j, a_j)`` as queued in every PE (EIE, section III-C)."""
    return data.StructLayout({"j": unsigned(config.col_bits), "a": signed(config.act_bits)})


def desc_layout(config: EngineConfig) -> data.StructLayout:
    """A layer descriptor.

    cols : input length (engine columns); vectors : source vectors to scan (fc:
    ``ceil(cols / n_pe)``; conv: a patch's ``kh*kw*groups``); rows : outputs the
    output stream gives if this is the last layer (fc: its rows; conv: every slot of
    its output map, ``out_local * n_pe``); rows_local : ``ceil(rows / n_pe)`` (conv:
    filters per PE); ptr_base : index of the layer's first pointer (even); bias_base :
    address of local row 0's bias; relu : 1 if a ReLU follows.

    Conv fields (``conv`` = 1; ``dcsim.hw.conv`` defines the layout): in_ch, in_h, in_w,
    in_hw (``in_h*in_w``) of the input map; groups (``ceil(in_ch / n_pe)``); kh, kw,
    stride, padding; win (pool window, 1 without pooling); out_h, out_w, out_hw of the
    output map after pooling.
    """
    side = unsigned(bits_for(config.act_depth))
    geom = unsigned(GEOM_BITS)
    return data.StructLayout({
        "cols": unsigned(config.col_bits),
        "vectors": unsigned(bits_for(max(config.act_depth, config.ptr_depth))),
        "rows": unsigned(config.col_bits),
        "rows_local": unsigned(bits_for(config.act_depth)),
        "ptr_base": unsigned(bits_for(config.ptr_depth - 1)),
        "bias_base": unsigned(bits_for(config.bias_depth - 1)),
        "relu": unsigned(1),
        "conv": unsigned(1),
        "in_ch": unsigned(bits_for(config.max_vector)),
        "in_h": side, "in_w": side, "in_hw": side, "groups": side,
        "kh": geom, "kw": geom, "stride": geom, "padding": geom, "win": geom,
        "out_h": side, "out_w": side, "out_hw": side,
    })


def load_addr_bits(config: EngineConfig) -> int:
    """Bits of a load word's address: enough for the deepest target."""
    return max(bits_for(d - 1) for d in (
        config.sparse_words, config.ptr_depth, config.max_layers * config.codebook_entries,
        config.bias_depth, config.act_depth, config.max_layers))


def load_data_bits(config: EngineConfig) -> int:
    """Bits of a load word's data: a sparse word, a pointer or a descriptor, whichever is widest."""
    return max(config.word_bits, config.ptr_bits, desc_layout(config).size, config.act_bits)


def load_layout(config: EngineConfig) -> data.StructLayout:
    """One word of the load stream: ``(target, pe, bcast, addr, data)``.

    ``bcast`` writes every PE at once (codebooks are the same on all PEs).
    """
    return data.StructLayout({
        "target": unsigned(TARGET_BITS),
        "pe": unsigned(config.pe_bits),
        "bcast": unsigned(1),
        "addr": unsigned(load_addr_bits(config)),
        "data": unsigned(load_data_bits(config)),
    })


def pack(layout: data.StructLayout, **fields) -> int:
    """The integer of a ``layout`` value with the given unsigned fields (others 0)."""
    return packer(layout, tuple(fields))(*fields.values())


def packer(layout: data.StructLayout, names: tuple):
    """``f(*values)`` = ``pack(layout, **dict(zip(names, values)))``: one word of
    :func:`pack_columns` (many words: call that instead)."""

    def pack_values(*values) -> int:
        return pack_columns(layout, names, [[v] for v in values])[0]

    return pack_values


def pack_columns(layout: data.StructLayout, names: tuple, columns) -> list:
    """:func:`packer`'s integers for many words at once: ``columns[i]`` holds field
    ``names[i]`` of every word (non-negative integers), all of one length. Returns one
    Python int per word; ValueError naming the field (and, for several words, the word)
    of the first value that does not fit. Fields that end below bit 63
    are shifted and ORed as int64 columns, wider ones (the data field) as columns of
    Python ints (numpy object arrays), so nothing overflows."""
    n = len(columns[0]) if columns else 0
    narrow, wide = np.zeros(n, dtype=np.int64), None
    for name, column in zip(names, columns, strict=True):
        offset, width = layout[name].offset, layout[name].width

        def misfit(k):
            return ValueError(f"Field {name} must fit {width} bits, not {int(column[k])!r}"
                              + (f" (word {k})" if n > 1 else ""))

        if offset + width <= 63:
            try:
                values = np.asarray(column, dtype=np.int64).reshape(n)
            except OverflowError:           # beyond int64: certainly too wide
                raise misfit(next(k for k, v in enumerate(column)
                                  if not 0 <= int(v) < 1 << width))
        else:
            values = np.empty(n, dtype=object)
            values[:] = [int(v) for v in column]
        bad = np.flatnonzero((values < 0) | (values >= (1 << width)))
        if bad.size:
            raise misfit(int(bad[0]))
        if values.dtype == object:
            wide = values << offset if wide is None else wide | (values << offset)
        else:
            narrow |= values << offset
    return narrow.tolist() if wide is None else (narrow.astype(object) | wide).tolist()


#: The fields of a load-stream word, in the order :meth:`EngineImage.load_words` gives them.
LOAD_FIELDS = ("target", "pe", "bcast", "addr", "data")


def pack_load_words(config: EngineConfig, words) -> list:
    """``(target, pe, bcast, addr, data)`` tuples -> the load stream's integers for
    ``config`` (:func:`load_layout`), packed a column at a time."""
    words = list(words)
    return pack_columns(load_layout(config), LOAD_FIELDS,
                        [[w[i] for w in words] for i in range(len(LOAD_FIELDS))])
