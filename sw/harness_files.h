// The harness's input files: a memory image (hex load words) and a batch of inputs.
//
// Image file: the load words of one model, one word per line, exactly
// layout::kLoadHexDigits hex digits (most significant first), the same text the cocotb
// testbench's $readmemh feeder reads (dcsim.hw.feeder.feed_hex).
//
// Inputs file (little-endian): 8 bytes "DCSIMIN1", uint32 n_images, uint32 n_cols, then
// n_images * n_cols int32 activations, image after image, each a signed kActBits value
// (the fixed-point inputs of layer 0).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "load_word.h"

namespace dcsim {

// A file that is missing or malformed; what() is one line starting with the path.
class FileError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

struct InputBatch {
    uint32_t n_images = 0;
    uint32_t n_cols = 0;
    std::vector<int32_t> values;          // n_images * n_cols, image-major

    const int32_t* image(uint32_t i) const { return values.data() + std::size_t{i} * n_cols; }
};

std::vector<LoadWord> read_image(const std::string& path);
InputBatch read_inputs(const std::string& path);

}  // namespace dcsim
