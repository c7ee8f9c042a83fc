#include "train/stop_signal.hpp"

#include <atomic>
#include <csignal>

namespace siglip2 {
namespace {

std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
}

}  // namespace

StopSignals::StopSignals() {
  g_stop_signal.store(0);
  old_term_ = std::signal(SIGTERM, on_stop_signal);
  old_int_ = std::signal(SIGINT, on_stop_signal);
}

StopSignals::~StopSignals() {
  std::signal(SIGTERM, old_term_);
  std::signal(SIGINT, old_int_);
}

bool stop_signal_received() {
  return g_stop_signal.load() != 0;
}

}  // namespace siglip2
