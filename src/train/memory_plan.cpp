#include "train/memory_plan.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <utility>

#include "common/error.hpp"
#include "losses/self_distillation.hpp"
#include "models/meta_shapes.hpp"
#include "models/siglip2.hpp"
#include "models/text_decoder.hpp"
#include "train/acid_stage.hpp"

namespace siglip2 {

namespace {

constexpr double kF32 = 4;

int64_t numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

// Parameter elements of one module: per block ("…layers.N.") and the rest, split into what the backward
// reaches first (heads, final LayerNorms) and last (embeddings).
struct StackParams {
  std::vector<int64_t> layer;
  int64_t head = 0, embedding = 0;
  int64_t total() const {
    int64_t n = head + embedding;
    for (int64_t l : layer) n += l;
    return n;
  }
};

StackParams split_params(const TensorShapes& shapes, const std::string& prefix, const std::string& layers_prefix) {
  StackParams p;
  for (const auto& [name, shape] : shapes) {
    if (name.rfind(prefix, 0) != 0) continue;
    const int64_t n = numel(shape);
    const std::string rest = name.substr(prefix.size());
    if (rest.rfind(layers_prefix, 0) == 0) {
      const size_t index = std::stoul(rest.substr(layers_prefix.size()));
      if (p.layer.size() <= index) p.layer.resize(index + 1, 0);
      p.layer[index] += n;
    } else if (rest.find("embedding") != std::string::npos) {
      p.embedding += n;
    } else {
      p.head += n;
    }
  }
  return p;
}

// One pass of a batch through a stack of blocks, as the activation count sees it. Values are per token
// unless named otherwise; `full` are kept in fp32 under autocast, `half` in the autocast dtype.
struct Pass {
  std::string name;     // "vision", "text", "decoder", "local crops", "masked"
  std::string stack;    // whose block parameters it differentiates: "vision", "text", "decoder"
  double tokens = 0;    // batch x sequence
  double d = 0, m = 0;  // width, MLP width
  int64_t layers = 0;
  double block_full = 0, block_half = 0;      // kept per token per block
  double cross_half = 0;                      // kept per block for the keys and values of cross-attention (total)
  double outside_full = 0, outside_half = 0;  // kept per token outside the blocks
  double extra = 0;                           // bytes kept outside the token stream (head rows, targets)
  double loss_transient = 0;  // bytes that exist only while the pass's loss is computed and differentiated
  int64_t head_params = 0;    // parameters differentiated only by this pass (DINO heads)
  bool checkpointed = true;   // subject to train.activation_checkpointing
};

// Values an encoder block keeps per token (header comment): 2 d in fp32 (block input, residual), 7 d + 2 m in
// the compute dtype. The attention kernels (flash on the CPU and on GPUs, masks included) keep their output
// and a log-sum-exp per head, not the probabilities.
Pass encoder_pass(const std::string& name, const std::string& stack, double batch, int64_t seq, int64_t d, int64_t m,
                  int64_t layers) {
  Pass p;
  p.name = name;
  p.stack = stack;
  p.tokens = batch * static_cast<double>(seq);
  p.d = static_cast<double>(d);
  p.m = static_cast<double>(m);
  p.layers = layers;
  p.block_full = 2 * p.d;
  p.block_half = 7 * p.d + 2 * p.m;
  return p;
}

struct Model {
  StackParams vision, text, decoder;
  int64_t global_head = 0, patch_head = 0, teacher = 0;
};

Model model_params(const RunConfig& c, bool locca, bool self_distillation) {
  Model out;
  const TensorShapes towers = parameter_shapes(c.model);
  out.vision = split_params(towers, "vision_model.", "encoder.layers.");
  out.text = split_params(towers, "text_model.", "encoder.layers.");
  // logit_scale and logit_bias: with the text head, reached first.
  for (const auto& [name, shape] : towers)
    if (name.rfind("vision_model.", 0) != 0 && name.rfind("text_model.", 0) != 0) out.text.head += numel(shape);
  if (locca) out.decoder = split_params(meta_parameter_shapes([&] { return TextDecoder(c.model); }), "", "layers.");
  if (self_distillation) {
    for (const auto& [name, shape] :
         meta_parameter_shapes([&] { return SelfDistillationHeads(c.model.vision, c.loss.self_distillation); })) {
      if (name.rfind("global_head.", 0) == 0)
        out.global_head += numel(shape);
      else
        out.patch_head += numel(shape);  // the patch head and the mask token: used by the masked pass
    }
    out.teacher = out.vision.total() + out.global_head + out.patch_head;
  }
  return out;
}

// NaFlex training draws a sequence length per batch (image.naflex_sequence_lengths; lengths from
// image.naflex_half_batch_length on come with half the batch): the plan is of the length with the most patches
// per batch. Returns the length and the share of the batch that comes with it.
std::pair<int64_t, double> naflex_worst(const ImageConfig& image) {
  std::vector<int64_t> lengths = image.naflex_sequence_lengths;
  if (lengths.empty()) lengths.push_back(image.max_num_patches);
  std::pair<int64_t, double> worst{0, 1.0};
  for (int64_t l : lengths) {
    const double share = l >= image.naflex_half_batch_length && !image.naflex_sequence_lengths.empty() ? 0.5 : 1.0;
    if (static_cast<double>(l) * share > static_cast<double>(worst.first) * worst.second) worst = {l, share};
  }
  return worst;
}

int64_t vision_tokens(const RunConfig& c) {
  const auto& v = c.model.vision;
  if (v.naflex) return naflex_worst(c.image).first;
  const int64_t grid = v.image_size / v.patch_size;
  return grid * grid;
}

// Matrix-product FLOPs of one pre-LN block's forward on `seq` tokens (forward_flops' convention).
double block_flops(double seq, double d, double m) {
  return 2 * (4 * seq * d * d + 2 * seq * seq * d + 2 * seq * d * m);
}

// The side of a self-distillation local crop: the data pipeline's, or the synthetic batches' half grid.
int64_t local_side(const RunConfig& c) {
  const auto& v = c.model.vision;
  if (c.train.data == "synthetic")
    return std::max<int64_t>(v.patch_size, (v.image_size / v.patch_size / 2) * v.patch_size);
  return c.data.self_distillation_views.local_size;
}

// DINO head rows: the values fc1..fc3 and the normalisation keep, then the log-softmax output and the
// target over the prototypes (fp32, dino_cross_entropy).
double dino_row_bytes(const RunConfig& c, double half) {
  const auto& s = c.loss.self_distillation;
  const double d = static_cast<double>(c.model.vision.hidden_size);
  const double hidden = static_cast<double>(s.head_hidden), bottleneck = static_cast<double>(s.head_bottleneck);
  return half * (d + 4 * hidden + bottleneck) + kF32 * (2 * bottleneck + 3 * static_cast<double>(s.prototypes));
}

std::vector<Pass> forward_passes(const RunConfig& c, const Model& model, double b, bool locca, bool self_distillation,
                                 double half) {
  const auto& v = c.model.vision;
  const auto& t = c.model.text;
  const int64_t s = vision_tokens(c);
  std::vector<Pass> passes;
  Pass vision = encoder_pass("vision", "vision", b, s, v.hidden_size, v.intermediate_size, v.num_hidden_layers);
  // Patch embedding, its sum with the positions, the post-LayerNorm's input and output, the MAP head's keys
  // and values.
  vision.outside_full = 2 * vision.d;
  vision.outside_half = 2 * vision.d;
  passes.push_back(vision);
  Pass text = encoder_pass("text", "text", b, t.max_position_embeddings, t.hidden_size, t.intermediate_size,
                           t.num_hidden_layers);
  text.outside_full = 2 * text.d;  // embeddings with positions, final LayerNorm
  passes.push_back(text);
  if (locca) {
    const int64_t l = c.model.decoder.max_length;
    for (int task = 0; task < 3; ++task) {  // captioning, referring expressions, grounded captioning
      Pass dec = encoder_pass("decoder", "decoder", b, l, t.hidden_size, t.intermediate_size, decoder_depth(c.model));
      // Cross-attention adds a LayerNorm (residual in fp32, output), its queries, output and copy.
      dec.block_full += dec.d;
      dec.block_half += 5 * dec.d;
      dec.cross_half = 2 * b * static_cast<double>(s) * dec.d;  // keys and values of the image tokens
      dec.outside_full = 5 * dec.d;  // embeddings, final LayerNorm, the counted rows of the cross-entropy
      // The chunked cross-entropy's logits over the vocabulary and their gradient, fp32, for one chunk of the
      // counted tokens (at most every decoder token).
      dec.loss_transient = 2 * kF32 *
                           std::min(static_cast<double>(c.loss.locca.chunk_tokens), b * static_cast<double>(l)) *
                           static_cast<double>(t.vocab_size);
      passes.push_back(dec);
    }
  }
  if (self_distillation) {
    const int64_t local = local_side(c) / v.patch_size;
    const double crops = static_cast<double>(c.data.self_distillation_views.local_crops);
    const double crop_rows = c.train.data == "synthetic" ? 8 * b : crops * b;
    Pass local_pass = encoder_pass("local crops", "vision", crop_rows, local * local, v.hidden_size,
                                   v.intermediate_size, v.num_hidden_layers);
    local_pass.outside_full = vision.outside_full;
    local_pass.outside_half = vision.outside_half;
    // The student's global-head rows, and the teacher's probabilities (one row per image, gathered per crop).
    const double k = static_cast<double>(c.loss.self_distillation.prototypes);
    local_pass.extra = crop_rows * dino_row_bytes(c, half) + b * kF32 * k;
    local_pass.head_params = model.global_head;
    passes.push_back(local_pass);
    Pass masked = vision;
    masked.name = "masked";
    masked.head_params = model.patch_head;  // and the mask token
    const double rows = b * static_cast<double>(s) * c.loss.self_distillation.mask_ratio;
    masked.extra = rows * dino_row_bytes(c, half) + rows * kF32 * k;  // + the teacher's patch probabilities
    passes.push_back(masked);
  }
  return passes;
}

double block_bytes(const Pass& p, double half) {
  return p.tokens * (kF32 * p.block_full + half * p.block_half) + half * p.cross_half;
}

struct Activations {
  double kept = 0, peak = 0;
};

// The walk of header comment: returns what the forward keeps and the peak over the step, above `base`
// (persistent tensors) with `grads_live` gradients already allocated (accumulation).
Activations simulate(const std::vector<Pass>& passes, const Model& model, int64_t every_n, double half, double base,
                     bool grads_live, double loss_bytes) {
  auto checkpointed = [&](const Pass& p, int64_t layer) {
    return p.checkpointed && every_n > 0 && layer % every_n == 0;
  };
  auto kept_in_block = [&](const Pass& p, int64_t layer) {
    return checkpointed(p, layer) ? p.tokens * kF32 * p.d : block_bytes(p, half);
  };
  auto kept_outside = [&](const Pass& p) {
    return p.tokens * (kF32 * p.outside_full + half * p.outside_half) + p.extra;
  };
  Activations a;
  double largest_block = 0;
  for (const Pass& p : passes) {
    a.kept += kept_outside(p);
    for (int64_t l = 0; l < p.layers; ++l) a.kept += kept_in_block(p, l);
    largest_block = std::max(largest_block, block_bytes(p, half));
  }
  // The forward's own peak: what is kept, plus, with checkpointing, the activations of a checkpointed block
  // while it runs (kept only until its output exists).
  double live = base + a.kept + loss_bytes;
  double peak = live + (every_n > 0 ? largest_block : 0.0);
  for (const Pass& p : passes) peak = std::max(peak, live + p.loss_transient);

  const std::map<std::string, const StackParams*> stacks = {
      {"vision", &model.vision}, {"text", &model.text}, {"decoder", &model.decoder}};
  // Each time the backward reaches a parameter it computes a new gradient; the first time it becomes the
  // parameter's .grad, later times (a second pass through the vision tower, accumulation) it is added to
  // it and freed.
  std::set<std::pair<std::string, int64_t>> touched;  // (stack, layer); layer -1: heads, -2: embeddings
  auto reach = [&](const std::string& stack, int64_t layer, int64_t elements, double others) {
    const double g = kF32 * static_cast<double>(elements);
    peak = std::max(peak, live + others + g);
    if (!grads_live && touched.insert({stack, layer}).second) live += g;
  };
  for (auto it = passes.rbegin(); it != passes.rend(); ++it) {
    const Pass& p = *it;
    const StackParams& sp = *stacks.at(p.stack);
    reach(p.stack, -1, sp.head, p.loss_transient);
    reach(p.name + " heads", -1, p.head_params, p.loss_transient);
    for (int64_t l = p.layers - 1; l >= 0; --l) {
      const double recompute = checkpointed(p, l) ? block_bytes(p, half) : 0.0;
      // Gradients of the block's activations while it is differentiated: the MLP hidden's dominates.
      const double transient = p.tokens * half * p.m;
      reach(p.stack, l, l < static_cast<int64_t>(sp.layer.size()) ? sp.layer[l] : 0, recompute + transient);
      live -= kept_in_block(p, l);
    }
    live -= kept_outside(p);
    reach(p.stack, -2, sp.embedding, 0.0);
  }
  a.peak = peak - base;
  return a;
}

double tower_macs_at(const ModelConfig& model, int64_t image_size) {
  ModelConfig m = model;
  m.vision.image_size = image_size;
  return forward_flops(m).vision;
}

}  // namespace

MemoryPlan plan_memory(const RunConfig& c, const PlanOptions& o) {
  if (o.world_size < 1) throw UsageError("world size must be at least 1");
  MemoryPlan plan;
  if (o.batch_per_rank > 0) {
    plan.batch_per_rank = o.batch_per_rank;
  } else {
    if (std::string why = c.check_world_size(o.world_size); !why.empty()) throw ConfigError(why);
    plan.batch_per_rank = c.train.batch_size / o.world_size;
  }
  const int64_t k = c.train.accumulation_steps;
  if (k > plan.batch_per_rank)
    throw ConfigError("train.accumulation_steps " + std::to_string(k) + " exceeds the per-rank batch " +
                      std::to_string(plan.batch_per_rank));
  plan.micro_batch = (plan.batch_per_rank + k - 1) / k;
  if (c.model.vision.naflex) plan.naflex_length = naflex_worst(c.image).first;
  const bool locca = c.train.locca;
  const bool sd = c.train.self_distillation && o.self_distillation && !c.model.vision.naflex;
  const double half = o.bf16 ? 2 : kF32;
  const double w = static_cast<double>(o.world_size);

  const Model model = model_params(c, locca, sd);
  plan.vision_params = model.vision.total();
  plan.text_params = model.text.total();
  plan.decoder_params = locca ? model.decoder.total() : 0;
  plan.head_params = model.global_head + model.patch_head;
  plan.teacher_params = model.teacher;
  const double p = static_cast<double>(plan.params());
  plan.weights = kF32 * p;
  plan.gradients = kF32 * p;
  if (o.world_size > 1) plan.gradient_buckets = kF32 * p * (c.train.shard_optimizer ? 1 + 1 / w : 1);
  plan.optimizer = 2 * kF32 * p / (c.train.shard_optimizer ? w : 1);
  plan.teacher = kF32 * static_cast<double>(plan.teacher_params);
  // Autocast casts the weights of matrix products, not the token and position embeddings (lookups).
  if (o.bf16)
    plan.weight_cast = 2 * static_cast<double>(plan.vision_params + plan.text_params - model.text.embedding +
                                               plan.decoder_params - (locca ? model.decoder.embedding : 0));

  // The batch: pixels (fp32), text ids and decoder targets (int64); with accumulation the whole per-rank batch
  // stays on the host and one micro-batch at a time is on the device.
  const auto& v = c.model.vision;
  const double b = static_cast<double>(plan.micro_batch) * (v.naflex ? naflex_worst(c.image).second : 1.0);
  const double pixels = v.naflex ? static_cast<double>(vision_tokens(c) * v.patch_size * v.patch_size)
                                 : static_cast<double>(v.image_size * v.image_size);
  plan.batch = b * (kF32 * static_cast<double>(v.num_channels) * pixels +
                    8.0 * static_cast<double>(c.model.text.max_position_embeddings) +
                    (locca ? 3 * 3 * 8.0 * static_cast<double>(c.model.decoder.max_length) : 0.0));
  if (sd) {
    const double side = static_cast<double>(local_side(c));
    plan.batch += b * 8 * kF32 * static_cast<double>(v.num_channels) * side * side;
  }
  // The sigmoid loss: this rank's logits block against one rank's texts, its sigmoid and gradient.
  const double loss_bytes = 3 * kF32 * b * b;

  // ACID: the run's super-batch and batch per rank (not the micro-batch largest_micro_batch tries).
  const bool acid = c.acid.on() && o.reference.has_value();
  double scoring_working = 0;  // while one chunk runs through a model without autograd
  if (acid) {
    const int64_t select = c.train.batch_size / o.world_size;
    plan.acid_super_batch = c.drawn_batch_size() / o.world_size;
    plan.reference_params = count_parameters(*o.reference).total;
    plan.reference = kF32 * static_cast<double>(plan.reference_params);
    plan.acid_scoring = static_cast<double>(acid_scoring_bytes(plan.acid_super_batch, select, c.acid.chunks,
                                                               v.hidden_size, o.reference->vision.hidden_size));
    // A chunk of a micro-batch: its pixels (and the reference's resized copy) on the device, and the largest
    // block's working set (q, k, v, attention output, MLP hidden before and after the activation) in one of
    // the two models; the learner's bf16 weight copies while it runs (autocast caches the casts of weights
    // that take gradients, until the chunk's scope ends).
    const double chunk = static_cast<double>((select + k - 1) / k);
    auto working = [&](const ModelConfig& mc) {
      const double grid = static_cast<double>(mc.vision.image_size / mc.vision.patch_size);
      return chunk * grid * grid * static_cast<double>(5 * mc.vision.hidden_size + 2 * mc.vision.intermediate_size) *
             half;
    };
    const auto& rv = o.reference->vision;
    scoring_working = chunk * kF32 * static_cast<double>(v.num_channels) *
                          static_cast<double>(v.image_size * v.image_size + rv.image_size * rv.image_size) +
                      std::max(working(c.model), working(*o.reference)) + plan.weight_cast;
  }

  const std::vector<Pass> passes = forward_passes(c, model, b, locca, sd, half);
  const double base = plan.persistent() + plan.weight_cast;
  const bool grads_live = k > 1;
  const double grads_before = grads_live ? plan.gradients : 0.0;
  auto run = [&](int64_t every_n) {
    return simulate(passes, model, every_n, half, base + grads_before, grads_live, loss_bytes);
  };
  const Activations now = run(c.train.checkpoint_every_n_blocks()), none = run(0), blocks = run(1);
  plan.activations = now.kept;
  plan.activations_none = none.kept;
  plan.activations_blocks = blocks.kept;
  const double end_of_step = plan.persistent() + plan.gradients;  // gradients complete, activations gone
  const double selecting = plan.persistent() + plan.acid_scoring + scoring_working;  // ACID: before the forward
  auto total = [&](const Activations& a) { return std::max({base + grads_before + a.peak, end_of_step, selecting}); };
  plan.peak = total(now);
  plan.peak_none = total(none);
  plan.peak_blocks = total(blocks);

  // FLOPs per rank per step.
  ModelConfig flops_model = c.model;
  if (v.naflex) flops_model.vision.num_patches = c.image.max_num_patches;  // forward_flops' NaFlex length
  const ForwardFlops towers = forward_flops(flops_model);
  const double br = static_cast<double>(plan.batch_per_rank);
  double grad_forward = br * towers.pair();
  // Checkpointing recomputes the forward of the checkpointed blocks (not embeddings, heads or the decoder's
  // output projection).
  const int64_t every_n = c.train.checkpoint_every_n_blocks();
  auto checkpointed = [&](int64_t layers) {
    return every_n <= 0 ? 0.0 : static_cast<double>((layers + every_n - 1) / every_n);
  };
  const double dv = static_cast<double>(v.hidden_size), mv = static_cast<double>(v.intermediate_size);
  const double sv = v.naflex ? static_cast<double>(c.image.max_num_patches) : static_cast<double>(vision_tokens(c));
  const auto& tt = c.model.text;
  double recompute =
      br * (checkpointed(v.num_hidden_layers) * block_flops(sv, dv, mv) +
            checkpointed(tt.num_hidden_layers) * block_flops(static_cast<double>(tt.max_position_embeddings),
                                                             static_cast<double>(tt.hidden_size),
                                                             static_cast<double>(tt.intermediate_size)));
  if (locca) {
    const auto& t = c.model.text;
    const double d = static_cast<double>(t.hidden_size), m = static_cast<double>(t.intermediate_size);
    const double l = static_cast<double>(c.model.decoder.max_length), s = static_cast<double>(vision_tokens(c));
    const double layer_macs =
        4 * l * d * d + 2 * l * l * d + 2 * l * d * d + 2 * s * dv * d + 2 * l * s * d + 2 * l * d * m;
    const double task =
        2 * (static_cast<double>(decoder_depth(c.model)) * layer_macs + l * d * static_cast<double>(t.vocab_size));
    grad_forward += 3 * br * task;
    recompute += 3 * br * checkpointed(decoder_depth(c.model)) * 2 * layer_macs;
  }
  double teacher = 0;
  if (sd) {
    const auto& s = c.loss.self_distillation;
    const double d = static_cast<double>(v.hidden_size), hidden = static_cast<double>(s.head_hidden);
    const double head_row = 2 * (d * hidden + hidden * hidden + hidden * static_cast<double>(s.head_bottleneck) +
                                 static_cast<double>(s.head_bottleneck * s.prototypes));
    const double crops =
        c.train.data == "synthetic" ? 8.0 : static_cast<double>(c.data.self_distillation_views.local_crops);
    const double masked_rows = static_cast<double>(vision_tokens(c)) * s.mask_ratio;
    teacher = br * (towers.vision + (1 + masked_rows) * head_row);
    const double students =
        br * (crops * tower_macs_at(c.model, local_side(c)) + towers.vision + (crops + masked_rows) * head_row);
    grad_forward += students;
    const double local_tokens = std::pow(static_cast<double>(local_side(c) / v.patch_size), 2);
    recompute +=
        br * checkpointed(v.num_hidden_layers) * (crops * block_flops(local_tokens, dv, mv) + block_flops(sv, dv, mv));
  }
  const double cache = k > 1 ? br * towers.pair() : 0.0;  // GradCache's forward without gradients
  const double scoring =
      acid ? static_cast<double>(plan.acid_super_batch) * (towers.pair() + forward_flops(*o.reference).pair()) : 0.0;
  plan.flops_forward = grad_forward + teacher + scoring;
  plan.flops_step = 3 * grad_forward + teacher + recompute + cache + scoring;
  return plan;
}

int64_t largest_micro_batch(const RunConfig& config, const PlanOptions& options, double device_bytes, int64_t every_n) {
  RunConfig c = config;
  c.train.accumulation_steps = 1;
  c.train.activation_checkpointing = every_n == 0 ? "none" : every_n == 1 ? "blocks" : "every_n";
  c.train.activation_checkpointing_every_n = every_n > 1 ? every_n : 0;
  PlanOptions whole = options;
  const int64_t per_rank = options.batch_per_rank > 0
                               ? options.batch_per_rank
                               : config.train.batch_size / std::max<int64_t>(1, options.world_size);
  auto fits = [&](int64_t b) {
    PlanOptions o = whole;
    o.batch_per_rank = b;
    MemoryPlan p = plan_memory(c, o);
    // A micro-batch smaller than the per-rank batch means accumulation, where every gradient is live while
    // each micro-batch runs: plan that case.
    if (b < per_rank) {
      RunConfig a = c;
      a.train.accumulation_steps = 2;
      o.batch_per_rank = 2 * b;
      p = plan_memory(a, o);
    }
    return p.peak <= device_bytes;
  };
  if (!fits(1)) return 0;
  int64_t lo = 1, hi = 2;
  while (fits(hi) && hi < (int64_t{1} << 40)) {
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (fits(mid) ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace siglip2
