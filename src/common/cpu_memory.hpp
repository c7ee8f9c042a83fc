#pragma once
// Bytes held by CPU tensors, counted by an allocator installed over LibTorch's CPU allocator
// (c10::SetCPUAllocator): the CPU counterpart of the CUDA caching allocator's allocated_bytes statistics,
// for `siglip2 bench` (activation memory with and without activation checkpointing). Only allocations
// made after install() are counted; memory libraries take for themselves (oneDNN scratch space, the
// allocator's own caches) is not a tensor's and is not counted. Thread-safe.
#include <cstdint>

namespace siglip2::cpu_memory {

// Installs the counting allocator once per process; later calls do nothing.
void install();
bool installed();

int64_t live_bytes();  // bytes of counted CPU tensors alive now
int64_t peak_bytes();  // most live_bytes since install() or the last reset_peak()
void reset_peak();     // peak := live

}  // namespace siglip2::cpu_memory
