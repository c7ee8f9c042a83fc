#pragma once
// Streaming tar access through libarchive: entries are read one after another, never the whole file.
#include <cstdint>
#include <memory>
#include <string>

struct archive;

namespace siglip2 {

struct TarEntry {
  std::string name;
  int64_t size = 0;  // as the header says
  std::string data;  // empty when not read (read_data false, or over max_bytes)
  bool data_read = false;
};

class TarReader {
 public:
  // Throws siglip2::Error when the file cannot be opened.
  explicit TarReader(const std::string& path);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next regular file; false at the end. Entries over max_bytes are skipped unread (data_read false).
  // Throws siglip2::Error on a truncated or corrupt archive ("shard x.tar: Truncated tar archive").
  bool next(TarEntry& entry, bool read_data = true, int64_t max_bytes = int64_t(1) << 30);

 private:
  std::string path_;
  archive* archive_ = nullptr;
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
