#pragma once
// Number checks for command-line options with messages a user can act on (CLI11's PositiveNumber and
// NonNegativeNumber print their range as 0 to the largest double).
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "common/error.hpp"

namespace siglip2::cli {

inline CLI::Validator at_least(double lowest, const std::string& what) {
  return CLI::Validator(
      [lowest, what](std::string& value) -> std::string {
        try {
          size_t used = 0;
          const double v = std::stod(value, &used);
          if (used == value.size() && v >= lowest) return "";
        } catch (...) {
        }
        return "must be " + what + ", got '" + value + "'";
      },
      what);
}

inline const CLI::Validator positive = at_least(1e-300, "a positive number");
inline const CLI::Validator non_negative = at_least(0.0, "zero or more");

// --activation-checkpointing none | blocks | every_n:N (N >= 1) as the config overrides it stands for;
// anything else is a UsageError naming the option.
inline std::vector<std::string> activation_checkpointing_overrides(const std::string& value) {
  const size_t colon = value.find(':');
  const std::string mode = value.substr(0, colon);
  const std::string n = colon == std::string::npos ? "" : value.substr(colon + 1);
  const bool ok = (mode == "none" || mode == "blocks") ? colon == std::string::npos
                  : mode == "every_n" ? !n.empty() && n.find_first_not_of("0123456789") == std::string::npos &&
                                            std::stoll(n.substr(0, 18)) >= 1
                                      : false;
  if (!ok)
    throw UsageError("--activation-checkpointing " + value +
                     ": none, blocks, or every_n:N with N >= 1 (blocks 0, N, 2N, ... recomputed)");
  std::vector<std::string> out{"train.activation_checkpointing=" + mode};
  if (!n.empty()) out.push_back("train.activation_checkpointing_every_n=" + n);
  return out;
}

}  // namespace siglip2::cli
