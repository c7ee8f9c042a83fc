// For tests/train/acid_stage_test.py: the ACID stage's scoring and selection (train/acid_stage.hpp) as the
// trainer runs them (train/step.hpp's pooled_embeddings, in another chunking), on two model directories and a
// super-batch from a safetensors file (pixel_values float32 [n, 3, S, S] at the learner's size, input_ids int64 [n,
// L]). Prints JSON: the learnability diagonal and the rows and columns of `--probe` pairs (through losses/acid.hpp on
// pooled_embeddings), the uniforms of each chunk, and what AcidSelection::select chose.
//   acid_select_tool LEARNER_DIR REFERENCE_DIR BATCH.safetensors SELECT CHUNKS SEED STEP PROBE,PROBE,...
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "common/safetensors.hpp"
#include "interop/checkpoint_dir.hpp"
#include "losses/acid.hpp"
#include "train/acid_stage.hpp"
#include "train/batch.hpp"
#include "train/step.hpp"

namespace {

std::vector<double> values(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  return {d.data_ptr<double>(), d.data_ptr<double>() + d.numel()};
}

}  // namespace

int main(int argc, char** argv) {
  using namespace siglip2;
  if (argc != 9) {
    std::cerr << "usage: acid_select_tool LEARNER REFERENCE BATCH.safetensors SELECT CHUNKS SEED STEP PROBES\n";
    return 2;
  }
  at::set_num_threads(1);
  ModelBundle learner = load_any_model(argv[1]);
  ModelBundle reference = load_any_model(argv[2]);
  auto tensors = safetensors::load(argv[3]);
  Batch batch;
  batch.pixel_values = tensors.at("pixel_values");
  batch.input_ids = tensors.at("input_ids");
  batch.source = tensors.at("source");
  const int64_t n = batch.pixel_values.size(0), select = std::stoll(argv[4]), chunks = std::stoll(argv[5]);
  const int64_t seed = std::stoll(argv[6]), step = std::stoll(argv[7]);
  std::vector<int64_t> probe;
  std::stringstream probes(argv[8]);
  for (std::string item; std::getline(probes, item, ',');) probe.push_back(std::stoll(item));

  RunConfig config;
  config.model = learner.config.model;
  config.image = learner.config.image;
  config.tokenizer = learner.config.tokenizer;
  config.train.batch_size = select;
  config.train.seed = seed;
  config.train.locca = config.train.self_distillation = false;
  config.acid.reference = argv[2];
  config.acid.chunks = chunks;
  config.acid.filter_ratio = 1.0 - static_cast<double>(select) / static_cast<double>(n);
  const c10::Device cpu(c10::kCPU);

  nlohmann::json out;
  {
    torch::NoGradGuard no_grad;
    const auto e =
        pooled_embeddings({{learner.model.get(), 0}, {reference.model.get(), reference.config.model.vision.image_size}},
                          split_batch(batch, 5), false, cpu);
    const Learnability s{
        {l2_normalize(e[0].first), l2_normalize(e[0].second), learner.model->logit_scale, learner.model->logit_bias},
        {l2_normalize(e[1].first), l2_normalize(e[1].second), reference.model->logit_scale,
         reference.model->logit_bias}};
    const at::Tensor idx = at::tensor(probe, at::kLong);
    out["diagonal"] = values(s.diagonal());
    nlohmann::json rows = nlohmann::json::array(), columns = nlohmann::json::array();
    const at::Tensor r = s.rows(idx), c = s.columns(idx).t();
    for (int64_t i = 0; i < r.size(0); ++i) {
      rows.push_back(values(r[i]));
      columns.push_back(values(c[i]));
    }
    out["rows"] = rows;
    out["columns"] = columns;
  }
  nlohmann::json uniforms = nlohmann::json::array();
  for (int64_t q = 0; q < chunks; ++q) uniforms.push_back(values(acid_uniforms(seed, step, 0, q, n)));
  out["uniforms"] = uniforms;
  AcidSelection selection(config, reference.model.ptr(), cpu, false, 0, 1, 2);
  AcidStepSelection sel = selection.select(*learner.model, batch, step);
  out["chosen"] = sel.chosen;
  for (const auto& [name, value] : sel.metrics) out[name] = value.item<double>();
  out["selected_rows"] = sel.batch.pixel_values.size(0);
  // What the step trains on: the selected examples' token ids and sources, in the batch's order.
  nlohmann::json ids = nlohmann::json::array();
  for (int64_t i = 0; i < sel.batch.input_ids.size(0); ++i) {
    at::Tensor row = sel.batch.input_ids[i].contiguous();
    ids.push_back(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel()));
  }
  out["selected_input_ids"] = ids;
  at::Tensor src = sel.batch.source.contiguous();
  out["selected_source"] = std::vector<int64_t>(src.data_ptr<int64_t>(), src.data_ptr<int64_t>() + src.numel());
  at::Tensor px = sel.batch.pixel_values.reshape({sel.batch.pixel_values.size(0), -1}).to(at::kDouble).sum(1);
  out["selected_pixel_sums"] = std::vector<double>(px.data_ptr<double>(), px.data_ptr<double>() + px.numel());
  std::cout << out.dump() << std::endl;
  return 0;
}
