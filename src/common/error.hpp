#pragma once
// Errors that cross the boundary where bad input enters (files, configs, command lines).
// The CLI prints what() on one line; ConfigError and UsageError exit with status 2, Error with 1.
#include <stdexcept>
#include <string>

namespace siglip2 {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A config file, a --set override or a config value is wrong; nothing has started yet.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// The command line itself is wrong.
class UsageError : public Error {
 public:
  using Error::Error;
};

}  // namespace siglip2
