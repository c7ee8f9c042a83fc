#include "common/cpu_memory.hpp"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <atomic>
#include <mutex>
#include <unordered_map>
#include <utility>

namespace siglip2::cpu_memory {
namespace {

std::atomic<int64_t> live{0};
std::atomic<int64_t> peak{0};

void add(int64_t n) {
  const int64_t now = live.fetch_add(n) + n;
  int64_t seen = peak.load();
  while (now > seen && !peak.compare_exchange_weak(seen, now)) {
  }
}

// The wrapped allocations by data pointer. The pointers handed out are "simple" (context == data), as
// raw_allocate() callers require, so the bookkeeping lives here rather than in the DataPtr's context.
struct Wrapped {
  c10::DataPtr inner;
  int64_t bytes;
};
std::mutex table_mutex;
c10::Allocator* base_allocator = nullptr;  // the allocator wrapped, set once by install()
std::unordered_map<void*, Wrapped>& table() {
  static auto* t = new std::unordered_map<void*, Wrapped>();  // never destroyed: frees may come at exit
  return *t;
}

void free_counted(void* data) {
  c10::DataPtr inner;  // released after the lock
  {
    std::lock_guard<std::mutex> lock(table_mutex);
    auto it = table().find(data);
    if (it == table().end()) {
      // Allocated before install() and released through the CPU allocator now: the wrapped one frees it.
      if (base_allocator != nullptr && base_allocator->raw_deleter() != nullptr) base_allocator->raw_deleter()(data);
      return;
    }
    live.fetch_sub(it->second.bytes);
    inner = std::move(it->second.inner);
    table().erase(it);
  }
}

class CountingAllocator final : public c10::Allocator {
 public:
  explicit CountingAllocator(c10::Allocator* base) : base_(base) {}

  c10::DataPtr allocate(size_t n) override {
    c10::DataPtr inner = base_->allocate(n);
    void* data = inner.get();
    if (data == nullptr) return inner;  // zero bytes
    const c10::Device device = inner.device();
    {
      std::lock_guard<std::mutex> lock(table_mutex);
      table().emplace(data, Wrapped{std::move(inner), static_cast<int64_t>(n)});
    }
    add(static_cast<int64_t>(n));
    return {data, data, &free_counted, device};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &free_counted; }

  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

 private:
  c10::Allocator* base_;
};

std::once_flag once;
std::atomic<bool> is_installed{false};

}  // namespace

void install() {
  std::call_once(once, [] {
    base_allocator = c10::GetCPUAllocator();
    static CountingAllocator counting(base_allocator);
    c10::SetCPUAllocator(&counting, /*priority=*/1);
    is_installed = true;
  });
}

bool installed() {
  return is_installed;
}

int64_t live_bytes() {
  return live.load();
}

int64_t peak_bytes() {
  return peak.load();
}

void reset_peak() {
  peak.store(live.load());
}

}  // namespace siglip2::cpu_memory
