#pragma once
// Models that a config key or an option names: train.init_from, acid.reference, and the ACID reference's
// shape for `siglip2 plan` and `siglip2 bench`.
#include <string>

#include "interop/checkpoint_dir.hpp"
#include "models/config.hpp"

namespace siglip2::cli {

// The directory a model source names: hf:DIR (a Hugging Face directory: config.json), a model directory or a
// checkpoint (config.yaml), or a run directory (one with a `latest` file: its checkpoints, newest first, the
// first that loads). `key` names the config key in every error (ConfigError).
ModelBundle load_model_source(const std::string& key, const std::string& value);

// The model: section of a model source as above, read without its weights (`siglip2 plan`).
ModelConfig model_source_shape(const std::string& key, const std::string& value);

// The shape of an ACID reference given by `option` as a model preset or a config file; a NaFlex tower is
// refused (the reference scores the learner's fixed-resolution pixels).
ModelConfig acid_reference_shape(const std::string& option, const std::string& preset_or_file);

// The same rule for a model source's shape: throws ConfigError naming `what` for a NaFlex tower.
void check_acid_reference_shape(const std::string& what, const ModelConfig& reference);

}  // namespace siglip2::cli
