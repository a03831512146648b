// Readers of the harness's image and inputs files (formats in harness_files.h).
#include "harness_files.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

namespace dcsim {
namespace {

constexpr char kInputsMagic[8] = {'D', 'C', 'S', 'I', 'M', 'I', 'N', '1'};
constexpr std::size_t kInputsHeaderBytes = 16;

std::string slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw FileError(path + ": no such file or not readable");
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int hex_value(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

uint32_t read_u32(const std::string& bytes, std::size_t at) {
    uint32_t v = 0;
    for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(bytes[at + i]);
    return v;
}

}  // namespace

std::vector<LoadWord> read_image(const std::string& path) {
    const std::string text = slurp(path);
    std::vector<LoadWord> words;
    const int digits = layout::kLoadHexDigits;
    // Bits of the top digit that lie inside the word.
    const int top_bits = layout::kLoadBits - 4 * (digits - 1);
    std::size_t pos = 0;
    std::size_t line = 0;
    while (pos < text.size()) {
        ++line;
        std::size_t end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        std::size_t len = end - pos;
        if (len > 0 && text[pos + len - 1] == '\r') --len;
        if (len != static_cast<std::size_t>(digits)) {
            std::ostringstream msg;
            msg << path << ": line " << line << " must be a load word of " << digits
                << " hex digits, not " << len << " characters; rewrite the image with dcsim";
            throw FileError(msg.str());
        }
        LoadWord word{};
        for (int d = 0; d < digits; ++d) {
            const int v = hex_value(text[pos + d]);
            const int bit = 4 * (digits - 1 - d);
            if (v < 0 || (d == 0 && (v >> top_bits) != 0)) {
                std::ostringstream msg;
                msg << path << ": line " << line << " must hold a " << layout::kLoadBits
                    << "-bit hex word, not '" << text.substr(pos, len)
                    << "'; rewrite the image with dcsim";
                throw FileError(msg.str());
            }
            set_field(word, bit, bit + 4 <= layout::kLoadBits ? 4 : top_bits,
                      static_cast<uint64_t>(v));
        }
        words.push_back(word);
        pos = end + 1;
    }
    if (words.empty()) throw FileError(path + ": must hold load words, not be empty");
    return words;
}

InputBatch read_inputs(const std::string& path) {
    const std::string bytes = slurp(path);
    if (bytes.size() < kInputsHeaderBytes ||
        std::memcmp(bytes.data(), kInputsMagic, sizeof kInputsMagic) != 0) {
        throw FileError(path + ": must start with the 16-byte DCSIMIN1 header, not " +
                        std::to_string(bytes.size()) + " bytes of something else");
    }
    InputBatch batch;
    batch.n_images = read_u32(bytes, 8);
    batch.n_cols = read_u32(bytes, 12);
    const uint64_t want = kInputsHeaderBytes + uint64_t{4} * batch.n_images * batch.n_cols;
    if (batch.n_images == 0 || batch.n_cols == 0 || bytes.size() != want) {
        std::ostringstream msg;
        msg << path << ": must hold " << batch.n_images << " x " << batch.n_cols
            << " int32 inputs (" << want << " bytes) with both counts above 0, not "
            << bytes.size() << " bytes; rewrite it with dcsim";
        throw FileError(msg.str());
    }
    batch.values.resize(std::size_t{batch.n_images} * batch.n_cols);
    const int64_t lo = -(int64_t{1} << (layout::kActBits - 1));
    const int64_t hi = (int64_t{1} << (layout::kActBits - 1)) - 1;
    for (std::size_t i = 0; i < batch.values.size(); ++i) {
        const int32_t v = static_cast<int32_t>(read_u32(bytes, kInputsHeaderBytes + 4 * i));
        if (v < lo || v > hi) {
            std::ostringstream msg;
            msg << path << ": input " << i % batch.n_cols << " of image " << i / batch.n_cols
                << " must be a signed " << layout::kActBits << "-bit value in " << lo << ".."
                << hi << ", not " << v;
            throw FileError(msg.str());
        }
        batch.values[i] = v;
    }
    return batch;
}

}  // namespace dcsim
