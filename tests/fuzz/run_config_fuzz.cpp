// The YAML config loader: the input is a run config file (without `base:` files, which would let
// the input name any path). What validates must also survive `config show`: the dumped YAML is
// read back into the same config.
#include <cstdlib>

#include "common/config.hpp"
#include "fuzz_util.hpp"
#include "train/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  return siglip2::fuzz::expect_errors_only([&] {
    siglip2::ConfigValue tree = siglip2::parse_config_text(text, "fuzz.yaml");
    tree.erase("base");
    const auto cfg = siglip2::config::from_tree<siglip2::RunConfig>(tree);
    const std::string dumped = siglip2::config::dump(cfg);
    std::string again;
    try {
      again = siglip2::config::dump(
          siglip2::config::from_tree<siglip2::RunConfig>(siglip2::parse_config_text(dumped, "dumped.yaml")));
    } catch (const siglip2::Error&) {
      std::abort();  // a config that validated dumps to YAML that does not
    }
    if (again != dumped) std::abort();
  });
}
