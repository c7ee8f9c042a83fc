#include "models/activation_checkpointing.hpp"

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/ivalue.h>
#include <torch/autograd.h>

#include <mutex>
#include <optional>
#include <utility>

namespace siglip2 {
namespace {

// What the recomputation needs besides the saved inputs, kept alive by the autograd graph.
struct Replay : torch::CustomClassHolder {
  CheckpointedBlock block;
  bool context_requires_grad = false;
  size_t parameters = 0;
  at::Tensor cpu_rng_state;
  std::optional<c10::Device> device;  // the input's accelerator, whose generator is saved too
  at::Tensor device_rng_state;
  c10::DeviceType autocast_device = c10::kCPU;  // the input's device type: its autocast state is replayed
  bool autocast = false;
  at::ScalarType autocast_dtype = at::kBFloat16;
};

// A generator's state, read and written under its lock (as torch.utils.checkpoint does).
at::Tensor rng_state(c10::Device device) {
  at::Generator g = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_rng_state(c10::Device device, const at::Tensor& state) {
  at::Generator g = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

// Sets the random-number and autocast state the forward saw, and puts back what was there before.
class ReplayState {
 public:
  explicit ReplayState(const Replay& r) : r_(r) {
    cpu_state_ = rng_state(c10::Device(c10::kCPU));
    set_rng_state(c10::Device(c10::kCPU), r.cpu_rng_state);
    if (r.device) {
      device_state_ = rng_state(*r.device);
      set_rng_state(*r.device, r.device_rng_state);
    }
    // The CPU's too: on the CPU backward runs on the caller's thread after its autocast scope has closed.
    autocast_was_ = at::autocast::is_autocast_enabled(r.autocast_device);
    dtype_was_ = at::autocast::get_autocast_dtype(r.autocast_device);
    at::autocast::set_autocast_dtype(r.autocast_device, r.autocast_dtype);
    at::autocast::set_autocast_enabled(r.autocast_device, r.autocast);
  }
  ~ReplayState() {
    set_rng_state(c10::Device(c10::kCPU), cpu_state_);
    if (r_.device) set_rng_state(*r_.device, device_state_);
    at::autocast::set_autocast_enabled(r_.autocast_device, autocast_was_);
    at::autocast::set_autocast_dtype(r_.autocast_device, dtype_was_);
    if (r_.autocast) at::autocast::clear_cache();
  }
  ReplayState(const ReplayState&) = delete;
  ReplayState& operator=(const ReplayState&) = delete;

 private:
  const Replay& r_;
  at::Tensor cpu_state_, device_state_;
  bool autocast_was_ = false;
  at::ScalarType dtype_was_ = at::kBFloat16;
};

struct CheckpointFunction : torch::autograd::Function<CheckpointFunction> {
  // Runs with gradients off (Function::apply): nothing of the block is recorded, only x and context kept.
  // The parameters are inputs too, so that the outer graph hands each its gradient once per use, exactly
  // as without checkpointing (one accumulation per backward, which train/grad_sync's hooks rely on).
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const std::optional<at::Tensor>& context, at::TensorList parameters,
                            c10::intrusive_ptr<Replay> replay) {
    replay->cpu_rng_state = rng_state(c10::Device(c10::kCPU));
    if (!x.device().is_cpu()) {
      replay->device = x.device();
      replay->device_rng_state = rng_state(x.device());
    }
    replay->autocast_device = x.device().type();
    replay->autocast = at::autocast::is_autocast_enabled(x.device().type());
    replay->autocast_dtype = at::autocast::get_autocast_dtype(x.device().type());
    replay->parameters = parameters.size();
    const at::Tensor c = context.value_or(at::Tensor());
    at::Tensor y = replay->block(x, c);
    ctx->save_for_backward({x, c});
    ctx->saved_data["replay"] = c10::IValue::make_capsule(std::move(replay));
    ctx->saved_data["parameters"] = std::vector<at::Tensor>(parameters.begin(), parameters.end());
    return y;
  }

  // Gradients for x, context, each parameter and the replay (none), in that order.
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto replay = c10::static_intrusive_pointer_cast<Replay>(ctx->saved_data["replay"].toCapsule());
    const std::vector<at::Tensor> parameters = ctx->saved_data["parameters"].toTensorVector();
    const auto saved = ctx->get_saved_variables();
    const bool x_needs_grad = ctx->needs_input_grad(0);
    at::Tensor x = saved[0].detach().requires_grad_(x_needs_grad);
    at::Tensor context;
    if (saved[1].defined()) context = saved[1].detach().requires_grad_(replay->context_requires_grad);
    at::Tensor y;
    {
      ReplayState state(*replay);
      torch::AutoGradMode grad(true);
      y = replay->block(x, context);
    }
    // Taken as computed, before any accumulation: the values and memory layouts the plain graph passes on.
    std::vector<at::Tensor> wrt;
    if (x_needs_grad) wrt.push_back(x);
    if (replay->context_requires_grad) wrt.push_back(context);
    for (const auto& p : parameters)
      if (p.requires_grad()) wrt.push_back(p);
    const torch::autograd::variable_list g =
        torch::autograd::grad({y}, wrt, {grad_outputs[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                              /*allow_unused=*/true);
    size_t next = 0;
    torch::autograd::variable_list out;
    out.push_back(x_needs_grad ? g[next++] : at::Tensor());
    out.push_back(replay->context_requires_grad ? g[next++] : at::Tensor());
    for (const auto& p : parameters) out.push_back(p.requires_grad() ? g[next++] : at::Tensor());
    out.emplace_back();  // the replay
    return out;
  }
};

}  // namespace

at::Tensor checkpointed(const CheckpointedBlock& block, const std::vector<at::Tensor>& parameters, const at::Tensor& x,
                        const at::Tensor& context) {
  if (!torch::GradMode::is_enabled()) return block(x, context);
  auto replay = c10::make_intrusive<Replay>();
  replay->block = block;
  replay->context_requires_grad = context.defined() && context.requires_grad();
  std::optional<at::Tensor> c;
  if (context.defined()) c = context;
  return CheckpointFunction::apply(x, c, at::TensorList(parameters), std::move(replay));
}

}  // namespace siglip2
