#pragma once
// SIGTERM and SIGINT (a preempted job, Ctrl-C) ask a training run to stop: the current step finishes, a
// checkpoint is saved and the process exits 0 (docs/training.md). A StopSignals object installs the
// handlers for its lifetime; the previous ones come back after.
namespace siglip2 {

class StopSignals {
 public:
  StopSignals();  // also forgets any earlier request
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  void (*old_term_)(int);
  void (*old_int_)(int);
};

// Whether SIGTERM or SIGINT arrived since the StopSignals object was made (async-signal-safe to set).
bool stop_signal_received();

}  // namespace siglip2
