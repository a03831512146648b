// The two functions of lz4's stable API (lz4.h, since lz4 1.7) that Verilator's FST
// writer (include/fstcpp/fstcpp_writer.cpp) calls, for machines that have the lz4
// runtime library but not its development header. Used only for waveform builds
// (dcsim.hw.verilator.fst_build_args); the code that runs is the system's liblz4.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);

#ifdef __cplusplus
}
#endif
