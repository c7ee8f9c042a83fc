#pragma once
// Shard lists as WebDataset writes them: "data/{000000..000999}.tar", "{a,b}/x.tar", several braces.
#include <string>
#include <vector>

#include "data/remote.hpp"

namespace siglip2 {

// Expands every brace group, left to right: "{a,b}" lists alternatives, "{007..012}" a numeric range whose
// numbers are zero-padded to the width of the first bound (descending ranges count down). Text without
// braces is returned as is. Unbalanced braces or a malformed range are a siglip2::Error naming the pattern.
std::vector<std::string> expand_braces(const std::string& pattern);

// Whether a shard is a command whose standard output is the tar ("pipe:COMMAND", webdataset's convention;
// src/data/tar.hpp) rather than a local file.
inline bool is_pipe_shard(const std::string& path) {
  return path.rfind("pipe:", 0) == 0;
}

// Whether a shard is read over the network (src/data/remote.hpp): http://, https:// or s3:// URLs.
inline bool is_remote_shard(const std::string& path) {
  return path.rfind("http://", 0) == 0 || path.rfind("https://", 0) == 0 || path.rfind("s3://", 0) == 0;
}

// Whether a shard is a local file (neither a command nor a URL): only those are checked before a run starts.
inline bool is_local_shard(const std::string& path) { return !is_pipe_shard(path) && !is_remote_shard(path); }

// A pattern list, each expanded, concatenated in order.
std::vector<std::string> expand_shard_patterns(const std::vector<std::string>& patterns);

// Before a run starts: the files of a local shard pattern that do not exist (commands are not checked). All of
// them missing (a typo in the pattern), or more than `max_missing` (a share, data.max_failed_shards) of them, is a
// siglip2::ConfigError "KEY: 'PATTERN': M of N shard files do not exist or cannot be checked (first: PATH)";
// fewer are a warning, and the loader skips and counts them as it does a shard lost mid-run (without counting them
// against the source's failed-open window). Every file is checked (one stat each).
// URLs (http(s)://, s3://), with `remote` given: the first three are opened (one request each, retried as
// `remote` says); all of them failing is a ConfigError "KEY: 'PATTERN': the first N shards cannot be read (first:
// URL: WHY)", a wrong host, bucket or key found before training rather than after.
void check_shard_files(const std::string& key, const std::string& pattern, const std::vector<std::string>& paths,
                       double max_missing, const RemoteOptions* remote = nullptr);

}  // namespace siglip2
