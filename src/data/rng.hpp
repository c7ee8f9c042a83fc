#pragma once
// Seeded randomness of the data stream. Draws are written out here rather than taken from
// std::*_distribution, whose results differ between standard libraries: the stream must be the same
// function of (seed, epoch, rank, worker) wherever it runs.
#include <cstdint>
#include <initializer_list>
#include <random>

namespace siglip2 {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// One seed from several integers (order matters).
inline uint64_t mix_seed(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x243F6A8885A308D3ull;
  for (uint64_t p : parts) h = splitmix64(h ^ splitmix64(p));
  return h;
}

using DataRng = std::mt19937_64;

inline double uniform01(DataRng& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}
inline double uniform(DataRng& rng, double lo, double hi) {
  return lo + (hi - lo) * uniform01(rng);
}
inline bool bernoulli(DataRng& rng, double p) {
  return uniform01(rng) < p;
}
// An integer in [0, n), n > 0.
inline uint64_t below(DataRng& rng, uint64_t n) {
  return static_cast<uint64_t>(uniform01(rng) * static_cast<double>(n)) % n;
}

}  // namespace siglip2
