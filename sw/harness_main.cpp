// The native harness: one loaded model, a batch of images back to back, JSON results.
//
//   dcsim_harness --image IMAGE.hex --inputs INPUTS.bin --layers L --outputs N
//                 --cycle-limit C [--first-image K] [--waves OUT.fst]
//
// Loads the image once, then for each input vector: loads it into activation bank 0,
// starts layers 0..L-1 and collects the N outputs of the last layer. Prints one JSON
// object on stdout (format in sw/README.md). Exit status: 0 done; 2 a bad argument or
// a missing or malformed file (one line on stderr starting with the path); 3 an image
// ran past C clocks after its start (the line names the image, counting from K, and the
// layer); 1 anything else. Nothing but the result is printed on stdout.
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include "Vengine.h"
#include "Vengine___024root.h"
#include "engine_driver.h"
#include "harness_files.h"
#include "verilated.h"

namespace {

constexpr int kExitFail = 1;
constexpr int kExitBadInput = 2;
constexpr int kExitCycleLimit = 3;

struct Options {
    std::string image, inputs, waves;
    int layers = 0;
    int outputs = 0;
    uint64_t cycle_limit = 0;
    uint64_t first_image = 0;  // the number of the batch's first image, for messages
};

class UsageError : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

uint64_t positive(const char* name, const char* text) {
    char* end = nullptr;
    const unsigned long long v = std::strtoull(text, &end, 10);
    if (end == text || *end != '\0' || v == 0 || text[0] == '-') {
        throw UsageError(std::string("dcsim_harness: ") + name +
                         " must be a positive integer, not '" + text + "'");
    }
    return v;
}

uint64_t non_negative(const char* name, const char* text) {
    if (std::strcmp(text, "0") == 0) return 0;
    try {
        return positive(name, text);
    } catch (const UsageError&) {
        throw UsageError(std::string("dcsim_harness: ") + name +
                         " must be a non-negative integer, not '" + text + "'");
    }
}

Options parse(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg.rfind("+verilator+", 0) == 0) continue;      // for contextp->commandArgs
        if (i + 1 >= argc) throw UsageError("dcsim_harness: " + arg + " must have a value");
        const char* value = argv[++i];
        if (arg == "--image") o.image = value;
        else if (arg == "--inputs") o.inputs = value;
        else if (arg == "--waves") o.waves = value;
        else if (arg == "--layers") o.layers = static_cast<int>(positive("--layers", value));
        else if (arg == "--outputs") o.outputs = static_cast<int>(positive("--outputs", value));
        else if (arg == "--cycle-limit") o.cycle_limit = positive("--cycle-limit", value);
        else if (arg == "--first-image") o.first_image = non_negative("--first-image", value);
        else throw UsageError("dcsim_harness: option must be one of --image, --inputs, "
                              "--layers, --outputs, --cycle-limit, --first-image, --waves, "
                              "not " + arg);
    }
    if (o.image.empty() || o.inputs.empty() || o.layers == 0 || o.outputs == 0 ||
        o.cycle_limit == 0) {
        throw UsageError("dcsim_harness: --image, --inputs, --layers, --outputs and "
                         "--cycle-limit must all be given");
    }
    if (o.layers > dcsim::layout::kMaxLayers) {
        throw UsageError("dcsim_harness: --layers must be at most " +
                         std::to_string(dcsim::layout::kMaxLayers) + ", not " +
                         std::to_string(o.layers));
    }
#if !VM_TRACE_FST
    if (!o.waves.empty()) {
        throw UsageError("dcsim_harness: --waves needs the harness built with TRACE=1, "
                         "not this plain build");
    }
#endif
    return o;
}

// The result goes to `out`; stdout itself is pointed at stderr while the model runs, so
// Verilator's own messages (VL_PRINTF) never mix with it.
void print_json(std::FILE* out, const std::vector<dcsim::RunResult>& runs, uint64_t clocks,
                double seconds, uint64_t compute_clocks, double compute_seconds) {
    std::fprintf(out, "{\"images\": %zu, \"clocks\": %" PRIu64 ", \"seconds\": %.6f, "
                "\"compute_clocks\": %" PRIu64 ", \"compute_seconds\": %.6f, \"runs\": [",
                runs.size(), clocks, seconds, compute_clocks, compute_seconds);
    for (std::size_t i = 0; i < runs.size(); ++i) {
        std::fprintf(out, "%s{\"outputs\": [", i ? ", " : "");
        for (std::size_t k = 0; k < runs[i].outputs.size(); ++k)
            std::fprintf(out, "%s%" PRId64, k ? ", " : "", runs[i].outputs[k]);
        std::fprintf(out, "], \"cycles\": [");
        for (std::size_t k = 0; k < runs[i].cycles.size(); ++k)
            std::fprintf(out, "%s%" PRIu32, k ? ", " : "", runs[i].cycles[k]);
        std::fprintf(out, "]}");
    }
    std::fprintf(out, "]}\n");
}

int run(int argc, char** argv, std::FILE* out) {
    const Options opt = parse(argc, argv);
    const std::vector<dcsim::LoadWord> image = dcsim::read_image(opt.image);
    const dcsim::InputBatch batch = dcsim::read_inputs(opt.inputs);

    const auto context = std::make_unique<VerilatedContext>();
    context->commandArgs(argc, argv);
    context->fatalOnError(false);
    const auto top = std::make_unique<Vengine>(context.get(), "engine");
    dcsim::EngineDriver<Vengine> driver(*context, *top);
#if VM_TRACE_FST
    std::unique_ptr<VerilatedFstC> trace;
    if (!opt.waves.empty()) {
        context->traceEverOn(true);
        trace = std::make_unique<VerilatedFstC>();
        top->trace(trace.get(), 99);
        trace->open(opt.waves.c_str());
        driver.trace_to(trace.get());
    }
#endif

    using Clock = std::chrono::steady_clock;
    const auto t0 = Clock::now();
    double compute_seconds = 0.0;
    uint64_t compute_clocks = 0;
    driver.reset();
    driver.load(image);
    std::vector<dcsim::RunResult> runs;
    runs.reserve(batch.n_images);
    std::vector<dcsim::LoadWord> input(batch.n_cols);
    for (uint32_t i = 0; i < batch.n_images; ++i) {
        const int32_t* x = batch.image(i);
        for (uint32_t j = 0; j < batch.n_cols; ++j) input[j] = dcsim::act_word(j, x[j]);
        driver.load(input);
        const auto started = Clock::now();
        dcsim::RunResult result = driver.run(opt.layers, opt.outputs, opt.cycle_limit);
        if (result.status == dcsim::RunStatus::kCycleLimit) {
#if VM_TRACE_FST
            if (trace) trace->close();
#endif
            std::fprintf(stderr, "dcsim_harness: image %" PRIu64 " must finish within the "
                         "cycle limit of %" PRIu64 " clocks, not still run in layer %d\n",
                         opt.first_image + i, opt.cycle_limit, result.stuck_layer);
            return kExitCycleLimit;
        }
        compute_seconds += std::chrono::duration<double>(Clock::now() - started).count();
        compute_clocks += result.compute_clocks;
        runs.push_back(std::move(result));
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    top->final();
#if VM_TRACE_FST
    if (trace) trace->close();
#endif
    print_json(out, runs, driver.clocks(), seconds, compute_clocks, compute_seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    std::fflush(stdout);
    const int result_fd = dup(STDOUT_FILENO);
    std::FILE* out = result_fd < 0 ? nullptr : fdopen(result_fd, "w");
    if (out == nullptr || dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
        std::fprintf(stderr, "dcsim_harness: stdout must be a writable stream, not closed\n");
        return kExitFail;
    }
    try {
        const int status = run(argc, argv, out);
        std::fclose(out);
        return status;
    } catch (const dcsim::FileError& err) {
        std::fprintf(stderr, "%s\n", err.what());
        return kExitBadInput;
    } catch (const UsageError& err) {
        std::fprintf(stderr, "%s\n", err.what());
        return kExitBadInput;
    } catch (const std::exception& err) {
        std::fprintf(stderr, "dcsim_harness: %s\n", err.what());
        return kExitFail;
    }
}
