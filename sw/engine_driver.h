// Drives a Verilated engine through its ports: reset, load, start, out, cycle counters.
//
// Header-only and templated on the Verilated class (`Vengine` in the harness; any
// --prefix works), so a C++ user can drive the engine from their own main. The stream
// rules are the engine's (dcsim.hw.engine.Engine): a transfer happens at a rising edge
// on which valid and ready are both high; the driver raises valid, evaluates, samples
// ready before the edge, and holds payload until the transfer. Port names are the
// engine's Verilog ones (``load__valid``...) as Verilator spells them: it encodes the
// second underscore of "__" as "__05F", so load__valid is the member load___05Fvalid.
#pragma once

#include <cstdint>
#include <vector>

#include "load_word.h"
#include "verilated.h"
#if VM_TRACE_FST
#include "verilated_fst_c.h"
#endif

namespace dcsim {

// How a run ended.
enum class RunStatus { kOk, kCycleLimit };

// One image's results: the last layer's outputs (signed), each layer's cycle count
// (the engine's counters), and the clocks from the start transfer until the engine is
// idle again (every layer plus the output stream).
struct RunResult {
    RunStatus status = RunStatus::kOk;
    std::vector<int64_t> outputs;
    std::vector<uint32_t> cycles;
    uint64_t compute_clocks = 0;
    int stuck_layer = -1;      // for kCycleLimit: the layer the sequencer was in
};

template <class Top>
class EngineDriver {
  public:
    EngineDriver(VerilatedContext& context, Top& top) : context_(context), top_(top) {
        top_.clk = 0;
        top_.rst = 0;
        top_.load___05Fvalid = 0;
        top_.start___05Fvalid = 0;
        top_.out___05Fready = 0;
        top_.cycle_addr = 0;
        top_.eval();
    }

#if VM_TRACE_FST
    // Dump every half clock into `trace` from now on (the caller opened it).
    void trace_to(VerilatedFstC* trace) { trace_ = trace; }
#endif

    // Clocks simulated so far.
    uint64_t clocks() const { return clocks_; }

    // Synchronous reset for `cycles` clocks.
    void reset(int cycles = 2) {
        top_.rst = 1;
        for (int i = 0; i < cycles; ++i) clock();
        top_.rst = 0;
        settle();
    }

    // Stream `words` into the load port, one transfer per clock while ready.
    void load(const std::vector<LoadWord>& words) {
        for (const LoadWord& word : words) {
            put_word(top_.load___05Fpayload, word);
            top_.load___05Fvalid = 1;
            while (!clock_sampling(top_.load___05Fready)) {}
        }
        top_.load___05Fvalid = 0;
        settle();
    }

    // Start layers 0..n_layers-1, collect `n_out` outputs, wait until idle and read the
    // per-layer cycle counters. Gives up with kCycleLimit after `cycle_limit` clocks
    // from the start transfer on, naming the layer the sequencer is in.
    RunResult run(int n_layers, int n_out, uint64_t cycle_limit) {
        RunResult result;
        top_.start___05Fpayload = n_layers;
        top_.start___05Fvalid = 1;
        while (!clock_sampling(top_.start___05Fready)) {}
        top_.start___05Fvalid = 0;
        top_.out___05Fready = 1;
        const uint64_t started = clocks_;
        while (static_cast<int>(result.outputs.size()) < n_out || top_.busy) {
            if (clocks_ - started >= cycle_limit) {
                top_.out___05Fready = 0;
                result.status = RunStatus::kCycleLimit;
                result.stuck_layer = static_cast<int>(DCSIM_ENGINE_LAYER(top_));
                return result;
            }
            settle();
            if (top_.out___05Fvalid && static_cast<int>(result.outputs.size()) < n_out) {
                result.outputs.push_back(to_signed_act(top_.out___05Fpayload));
            }
            edge();
        }
        top_.out___05Fready = 0;
        result.compute_clocks = clocks_ - started;
        for (int l = 0; l < n_layers; ++l) {
            top_.cycle_addr = l;
            top_.eval();
            result.cycles.push_back(static_cast<uint32_t>(top_.cycle_data));
        }
        settle();
        return result;
    }

  private:
    // Low half of a clock: settle the inputs just set (clk low).
    void settle() {
        top_.clk = 0;
        top_.eval();
    }

    // The rising edge, then time moves on one clock period (10 time units).
    void edge() {
        dump();
        context_.timeInc(5);
        top_.clk = 1;
        top_.eval();
        dump();
        context_.timeInc(5);
        ++clocks_;
    }

    void clock() { settle(); edge(); }

    // One clock; returns the value `strobe` had just before the rising edge.
    template <typename Signal>
    bool clock_sampling(const Signal& strobe) {
        settle();
        const bool fired = strobe;
        edge();
        return fired;
    }

    void dump() {
#if VM_TRACE_FST
        if (trace_ != nullptr) trace_->dump(context_.time());
#endif
    }

    VerilatedContext& context_;
    Top& top_;
    uint64_t clocks_ = 0;
#if VM_TRACE_FST
    VerilatedFstC* trace_ = nullptr;
#endif
};

}  // namespace dcsim
