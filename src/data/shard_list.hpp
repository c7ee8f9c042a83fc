#pragma once
// Shard lists as WebDataset writes them: "data/{000000..000999}.tar", "{a,b}/x.tar", several braces.
#include <string>
#include <vector>

namespace siglip2 {

// Expands every brace group, left to right: "{a,b}" lists alternatives, "{007..012}" a numeric range whose
// numbers are zero-padded to the width of the first bound (descending ranges count down). Text without
// braces is returned as is. Unbalanced braces or a malformed range are a siglip2::Error naming the pattern.
std::vector<std::string> expand_braces(const std::string& pattern);

// A pattern list, each expanded, concatenated in order.
std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns);

}  // namespace siglip2
