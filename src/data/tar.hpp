#pragma once
// Streaming tar access through libarchive: entries are read one after another, never the whole file.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "data/remote.hpp"

struct archive;

namespace siglip2 {

struct TarEntry {
  std::string name;
  int64_t offset = 0;  // of its header (a pax or GNU long-name header before it included) in the tar stream
  int64_t size = 0;    // as the header says
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
  //
  // `offset` > 0 starts at the entry whose header is there (a TarEntry::offset of an earlier reading of the same
  // shard): with `seek`, the bytes before it are not read (a local file is positioned there, a URL is asked for
  // "Range: bytes=OFFSET-"); without (pipes, compressed shards), the stream is read from its start and the entries
  // before it are skipped unread.
  explicit TarReader(const std::string& path, const RemoteOptions& remote = {},
                     const std::atomic<bool>* stop = nullptr, int64_t offset = 0, bool seek = false);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next regular file; false at the end. Entries over max_bytes are skipped unread (data_read false).
  // Throws siglip2::Error on a truncated or corrupt archive ("shard x.tar: Truncated tar archive"), and, for a
  // pipe, at the end when the command exited with a non-zero status.
  bool next(TarEntry& entry, bool read_data = true, int64_t max_bytes = int64_t(1) << 30);
  // The same, deciding per entry from its header (name, offset, size) whether to read the data.
  bool next(TarEntry& entry, const std::function<bool(const TarEntry&)>& read_data, int64_t max_bytes);

  // Whether a later reader may start at an offset of this one with `seek`: a file or URL without a compression
  // filter. Known once the first header is read (false before).
  bool seekable() const;

  // Remote shards: requests made after the first (Range resumes and retries); 0 otherwise.
  int64_t remote_resumes() const { return remote_ ? remote_->resumes() : 0; }

 private:
  void close_pipe();    // closes our end, stops the command if it still runs, reaps it
  int finish_command();  // waits for the command to end (its output is consumed): its exit status

  friend struct TarReaderCallbacks;

  std::string path_;
  archive* archive_ = nullptr;
  int64_t base_ = 0;   // where the stream libarchive reads starts in the shard (seek)
  int64_t skip_ = 0;   // entries before this offset are skipped (a start offset without seek)
  int file_fd_ = -1;   // a local file opened at an offset
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
  int64_t base_ = 0;   // where the stream libarchive reads starts in the shard (seek)
  int64_t skip_ = 0;   // entries before this offset are skipped (a start offset without seek)
  int file_fd_ = -1;   // a local file opened at an offset
};

}  // namespace siglip2
