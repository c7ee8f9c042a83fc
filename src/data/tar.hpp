#pragma once
// Streaming tar access through libarchive: entries are read one after another, never the whole file.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "data/remote.hpp"

struct archive;

namespace siglip2 {

struct TarEntry {
  std::string name;
  int64_t size = 0;  // as the header says
  std::string data;  // empty when not read (read_data false, or over max_bytes)
  bool data_read = false;
};

// `path` is a file; an http://, https:// or s3:// URL, streamed through libcurl (data/remote.hpp: retries and
// Range resumes as `remote` says; `stop` ends its waits); or "pipe:COMMAND" (webdataset's convention):
// COMMAND runs under /bin/sh -c with stdin /dev/null and stderr inherited, and the tar is read from its
// standard output as it streams, never written to disk ("pipe:aws s3 cp s3://bucket/x.tar -").
class TarReader {
 public:
  // Throws siglip2::Error when the file cannot be opened, the URL answers with an error, or the command cannot
  // be started or fails before it writes a tar header.
  explicit TarReader(const std::string& path, const RemoteOptions& remote = {},
                     const std::atomic<bool>* stop = nullptr);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next regular file; false at the end. Entries over max_bytes are skipped unread (data_read false).
  // Throws siglip2::Error on a truncated or corrupt archive ("shard x.tar: Truncated tar archive"), and, for a
  // pipe, at the end when the command exited with a non-zero status.
  bool next(TarEntry& entry, bool read_data = true, int64_t max_bytes = int64_t(1) << 30);

  // Remote shards: requests made after the first (Range resumes and retries); 0 otherwise.
  int64_t remote_resumes() const { return remote_ ? remote_->resumes() : 0; }

 private:
  void close_pipe();    // closes our end, stops the command if it still runs, reaps it
  int finish_command();  // waits for the command to end (its output is consumed): its exit status

  friend struct TarReaderCallbacks;

  std::string path_;
  archive* archive_ = nullptr;
  std::unique_ptr<RemoteStream> remote_;  // http(s):// and s3:// shards
  std::string chunk_;                     // remote: the bytes handed to libarchive last
  int fd_ = -1;    // pipe: the read end of the command's standard output
  int pid_ = -1;   // pipe: the command's process
};


// Writes an uncompressed POSIX (ustar/pax) tar with fixed metadata (mtime 0, mode 0644, uid 0), so the
// same entries give the same bytes.
class TarWriter {
 public:
  explicit TarWriter(const std::string& path);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  void add(const std::string& name, const std::string& data);
  void close();  // flushes; the destructor closes too but cannot report errors

 private:
  std::string path_;
  archive* archive_ = nullptr;
};

}  // namespace siglip2
