// Test tool: reads shards through TarReader (files, pipe:, http(s)://, s3://) and prints one line per regular
// entry, "OFFSET NAME SIZE FNV1A64" (OFFSET: of its header), then "resumes N" (remote shards). A read error
// prints "error: MESSAGE" to stderr and exits 1. --offset starts at that header (--seek: positioned there, else
// the entries before it are skipped).
//   shard_cat [--retries N] [--retry-delay-ms MS] [--read-timeout-s S] [--connect-timeout-s S]
//             [--offset BYTES [--seek 1]] SHARD...
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/error.hpp"
#include "data/tar.hpp"

int main(int argc, char** argv) {
  siglip2::RemoteOptions options;
  int64_t offset = 0;
  bool seek = false;
  int i = 1;
  for (; i + 1 < argc && std::strncmp(argv[i], "--", 2) == 0; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--retries") options.retries = std::atoll(value);
    else if (flag == "--retry-delay-ms") options.retry_delay_ms = std::atoll(value);
    else if (flag == "--read-timeout-s") options.read_timeout_s = std::atof(value);
    else if (flag == "--connect-timeout-s") options.connect_timeout_s = std::atof(value);
    else if (flag == "--offset") offset = std::atoll(value);
    else if (flag == "--seek") seek = std::atoi(value) != 0;
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    for (; i < argc; ++i) {
      siglip2::TarReader reader(argv[i], options, nullptr, offset, seek);
      siglip2::TarEntry entry;
      while (reader.next(entry)) {
        uint64_t h = 14695981039346656037ull;  // FNV-1a, 64 bits
        for (unsigned char c : entry.data) h = (h ^ c) * 1099511628211ull;
        std::printf("%lld %s %lld %016llx\n", static_cast<long long>(entry.offset), entry.name.c_str(),
                    static_cast<long long>(entry.size), static_cast<unsigned long long>(h));
      }
      std::printf("resumes %lld\n", static_cast<long long>(reader.remote_resumes()));
    }
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
