#pragma once
// Number checks for command-line options with messages a user can act on (CLI11's PositiveNumber and
// NonNegativeNumber print their range as 0 to the largest double).
#include <CLI/CLI.hpp>

#include <string>

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

}  // namespace siglip2::cli
