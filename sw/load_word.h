// Load-stream words of the engine: packing fields into a word and words into ports.
//
// The field offsets and widths come from the generated dcsim_layout.h (written by
// dcsim.hw.layout_header from dcsim/hw/layouts.py for one EngineConfig); this file only
// moves bits.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "dcsim_layout.h"

namespace dcsim {

// One load word, 32 bits per element, element 0 holds bits 0..31 (Verilator's order
// for ports wider than 64 bits).
using LoadWord = std::array<uint32_t, layout::kLoadWords32>;

// Set bits [offset, offset + width) of `word` to the low `width` bits of `value`
// (width <= 64), one 32-bit element at a time.
inline void set_field(LoadWord& word, int offset, int width, uint64_t value) {
    int b = 0;
    while (b < width) {
        const int pos = offset + b;
        const int shift = pos % 32;
        const int n = (32 - shift) < (width - b) ? (32 - shift) : (width - b);
        const uint32_t mask = (n == 32 ? 0xffffffffu : ((1u << n) - 1u)) << shift;
        const uint32_t chunk = static_cast<uint32_t>(value >> b) << shift;
        word[pos / 32] = (word[pos / 32] & ~mask) | (chunk & mask);
        b += n;
    }
}

// The load word writing `data` (at most 64 bits: activations, pointers, biases,
// codebook values; wide sparse words come pre-packed in an image file) to `addr` of
// `target` on PE `pe`, or on every PE if `bcast`.
inline LoadWord pack_load(layout::Target target, uint32_t pe, bool bcast, uint32_t addr,
                          uint64_t data) {
    LoadWord word{};
    set_field(word, layout::kLoadTargetOffset, layout::kLoadTargetBits,
              static_cast<uint32_t>(target));
    set_field(word, layout::kLoadPeOffset, layout::kLoadPeBits, pe);
    set_field(word, layout::kLoadBcastOffset, layout::kLoadBcastBits, bcast ? 1 : 0);
    set_field(word, layout::kLoadAddrOffset, layout::kLoadAddrBits, addr);
    const int data_bits = layout::kLoadDataBits < 64 ? layout::kLoadDataBits : 64;
    set_field(word, layout::kLoadDataOffset, data_bits, data);
    return word;
}

// Input activation j of layer 0 (a signed kActBits value): PE j % n_pe, address
// j / n_pe of activation bank 0 (the engine's interleave, docs/engine.md).
inline LoadWord act_word(uint32_t j, int64_t value) {
    const uint64_t mask = (uint64_t{1} << layout::kActBits) - 1;
    return pack_load(layout::Target::ACT, j % layout::kNPe, false, j / layout::kNPe,
                     static_cast<uint64_t>(value) & mask);
}

// Write a word to a Verilated input port of any width (CData/SData/IData/QData for up
// to 64 bits, VlWide<N> beyond).
template <typename Port>
inline void put_word(Port& port, const LoadWord& word) {
    uint64_t v = word[0];
    if constexpr (layout::kLoadWords32 > 1) v |= static_cast<uint64_t>(word[1]) << 32;
    port = static_cast<Port>(v);
}

template <std::size_t N, template <std::size_t> class Wide>
inline void put_word(Wide<N>& port, const LoadWord& word) {
    static_assert(N == layout::kLoadWords32, "load port width differs from dcsim_layout.h");
    for (std::size_t i = 0; i < N; ++i) port[i] = word[i];
}

// A kActBits-bit two's complement port value as a signed integer.
inline int64_t to_signed_act(uint64_t raw) {
    const uint64_t mask = (uint64_t{1} << layout::kActBits) - 1;
    const uint64_t sign = uint64_t{1} << (layout::kActBits - 1);
    raw &= mask;
    return static_cast<int64_t>((raw ^ sign)) - static_cast<int64_t>(sign);
}

}  // namespace dcsim
