// The one file that includes ProcessGroupGloo.hpp. LibTorch links Gloo statically but ships no
// Gloo headers, so this file compiles against Debian's libgloo-dev headers, which are older than
// the Gloo inside the wheel. docs/distributed.md explains why that is sound for what is done here:
//  - only out-of-line members of ProcessGroupGloo/Options are called (constructors, the static
//    device factory, virtual collectives), never inline Gloo code;
//  - objects are allocated with spare room after them, filled with a canary that is checked after
//    the library's constructor ran: if the library's idea of the object were larger than ours,
//    its constructor would have written there, and we refuse to go on;
//  - the fields we write (Options::devices, Options::threads) are checked against the values the
//    library's constructor put there before we touch them.
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "common/error.hpp"
#include "train/distributed.hpp"
#include "train/gloo_layout.hpp"

namespace siglip2 {
namespace {

constexpr unsigned char kCanary = 0xA5;

// A T with the spare room as a member of its own, so that the object's size is the allocation's:
// the intrusive_ptr deletes it through T's virtual destructor, which ends in WithSpare's sized
// operator delete. (Spare room that T did not know of would reach the allocator as a smaller size,
// which allocators with sized deallocation, such as tcmalloc and jemalloc, take at its word.)
// `spare` is deliberately left uninitialised by the constructor: make_with_canary fills it first.
template <class T>
struct WithSpare final : T {
  using T::T;
  unsigned char spare[kGlooSpareBytes];
};

template <class T, class... Args>
c10::intrusive_ptr<T> make_with_canary(const char* what, Args&&... args) {
  using Padded = WithSpare<T>;
  unsigned char* mem = static_cast<unsigned char*>(::operator new(sizeof(Padded)));
  std::memset(mem, kCanary, sizeof(Padded));
  Padded* obj = nullptr;
  try {
    obj = new (mem) Padded(std::forward<Args>(args)...);
  } catch (...) {
    ::operator delete(mem, sizeof(Padded));
    throw;
  }
  auto ptr = c10::intrusive_ptr<T>::unsafe_steal_from_new(obj);
  const std::size_t spare_at = reinterpret_cast<unsigned char*>(obj->spare) - mem;
  for (std::size_t i = spare_at; i < sizeof(Padded); ++i) {
    if (mem[i] != kCanary) {
      throw Error(std::string("Gloo layout check failed: the library's ") + what + " is larger than " +
                  std::to_string(spare_at) + " bytes; the Gloo headers used at build time do not match LibTorch");
    }
  }
  return ptr;
}

}  // namespace

GlooLayout gloo_layout() {
  GlooLayout l;
  l.process_group_bytes = sizeof(c10d::ProcessGroupGloo);
  l.options_bytes = sizeof(c10d::ProcessGroupGloo::Options);
  l.options_devices_offset = offsetof(c10d::ProcessGroupGloo::Options, devices);
  l.options_threads_offset = offsetof(c10d::ProcessGroupGloo::Options, threads);
  auto opts =
      make_with_canary<c10d::ProcessGroupGloo::Options>("ProcessGroupGloo::Options", std::chrono::milliseconds(12345));
  l.options_ctor_threads = opts->threads;
  l.options_ctor_devices = opts->devices.size();
  l.options_ctor_timeout_ms = opts->timeout.count();
  return l;
}

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                    int world_size, std::chrono::milliseconds timeout) {
  using Gloo = c10d::ProcessGroupGloo;
  auto opts = make_with_canary<Gloo::Options>("ProcessGroupGloo::Options", timeout);
  if (opts->threads != 2 || !opts->devices.empty() || opts->timeout != timeout)
    throw Error("Gloo layout check failed: ProcessGroupGloo::Options fields are not where the headers put them");
  const char* iface = std::getenv("GLOO_SOCKET_IFNAME");
  if (iface && *iface) {
    opts->devices.push_back(Gloo::createDeviceForInterface(iface));
  } else {
    const char* host = std::getenv("SIGLIP2_GLOO_HOST");
    opts->devices.push_back(host && *host ? Gloo::createDeviceForHostname(host) : Gloo::createDefaultDevice());
  }
  opts->threads = 2;
  auto pg = make_with_canary<Gloo>("ProcessGroupGloo", store, rank, world_size, opts);
  return pg;
}

}  // namespace siglip2
