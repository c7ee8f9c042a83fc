// For tests/losses/acid_test.py: runs the ACID learnability and JEST joint sampler (losses/acid.hpp) on the
// embeddings, logit scales and biases, sizes and uniforms a JSON file gives, and prints what they return as
// JSON: {"chosen": [...], "diagonal": [...], "rows": [[...]], "columns": [[...]], "mean_selected", "mean_rejected"}.
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <vector>

#include "losses/acid.hpp"

namespace {

at::Tensor matrix(const nlohmann::json& j) {
  const auto rows = j.get<std::vector<std::vector<double>>>();
  at::Tensor t = at::empty({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows.at(0).size())}, at::kDouble);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t k = 0; k < rows[i].size(); ++k) t[static_cast<int64_t>(i)][static_cast<int64_t>(k)] = rows[i][k];
  return t.to(at::kFloat);
}

siglip2::PairScorer scorer(const nlohmann::json& j) {
  return {matrix(j.at("image")), matrix(j.at("text")), at::full({1}, j.at("logit_scale").get<double>()),
          at::full({1}, j.at("logit_bias").get<double>())};
}

nlohmann::json rows_of(const at::Tensor& t) {
  nlohmann::json out = nlohmann::json::array();
  at::Tensor d = t.to(at::kDouble).contiguous();
  for (int64_t i = 0; i < d.size(0); ++i) {
    const double* p = d[i].data_ptr<double>();
    out.push_back(std::vector<double>(p, p + d.size(1)));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: acid_tool INPUT.json\n";
    return 2;
  }
  std::ifstream in(argv[1]);
  const nlohmann::json j = nlohmann::json::parse(in);
  const siglip2::Learnability s{scorer(j.at("learner")), scorer(j.at("reference"))};
  const auto uniforms = j.at("uniforms").get<std::vector<std::vector<double>>>();
  auto uniform = [&](int64_t chunk, int64_t n) {
    const auto& u = uniforms.at(static_cast<size_t>(chunk));
    at::Tensor t = at::empty({n}, at::kDouble);
    for (int64_t i = 0; i < n; ++i) t[i] = u.at(static_cast<size_t>(i));
    return t;
  };
  nlohmann::json out;
  try {
    const siglip2::JointSelection sel =
        siglip2::jest_joint_sample(s, j.at("select").get<int64_t>(), j.at("chunks").get<int64_t>(), uniform);
    out["chosen"] = sel.chosen;
    out["mean_selected"] = sel.mean_selected;
    out["mean_rejected"] = sel.mean_rejected;
  } catch (const std::invalid_argument& e) {
    out["error"] = e.what();
  }
  const at::Tensor probe = at::tensor(j.at("probe").get<std::vector<int64_t>>(), at::kLong);
  at::Tensor diag = s.diagonal().to(at::kDouble).contiguous();
  out["diagonal"] = std::vector<double>(diag.data_ptr<double>(), diag.data_ptr<double>() + diag.numel());
  out["rows"] = rows_of(s.rows(probe));
  out["columns"] = rows_of(s.columns(probe).t());
  std::cout << out.dump() << std::endl;
  return 0;
}
