#include "data/tar.hpp"

#include <archive.h>
#include <archive_entry.h>

#include "common/error.hpp"

namespace siglip2 {
namespace {

std::string archive_message(archive* a) {
  const char* m = archive_error_string(a);
  return m ? m : "unknown libarchive error";
}

}  // namespace

TarReader::TarReader(const std::string& path) : path_(path), archive_(archive_read_new()) {
  if (!archive_) throw Error("shard " + path + ": libarchive cannot allocate a reader");
  archive_read_support_format_tar(archive_);
  archive_read_support_filter_all(archive_);  // .tar.gz etc. stream too
  if (archive_read_open_filename(archive_, path.c_str(), 1 << 20) != ARCHIVE_OK) {
    const std::string message = archive_message(archive_);
    archive_read_free(archive_);
    archive_ = nullptr;
    throw Error("shard " + path + ": cannot open (" + message + ")");
  }
}

TarReader::~TarReader() {
  if (archive_) archive_read_free(archive_);
}

bool TarReader::next(TarEntry& entry, bool read_data, int64_t max_bytes) {
  for (;;) {
    archive_entry* header = nullptr;
    const int status = archive_read_next_header(archive_, &header);
    if (status == ARCHIVE_EOF) return false;
    if (status < ARCHIVE_WARN) throw Error("shard " + path_ + ": " + archive_message(archive_));
    if (archive_entry_filetype(header) != AE_IFREG) continue;
    entry.name = archive_entry_pathname(header) ? archive_entry_pathname(header) : "";
    entry.size = archive_entry_size_is_set(header) ? archive_entry_size(header) : 0;
    entry.data.clear();
    entry.data_read = false;
    if (!read_data || entry.size > max_bytes) {
      if (archive_read_data_skip(archive_) < ARCHIVE_WARN)
        throw Error("shard " + path_ + ": entry '" + entry.name + "': " + archive_message(archive_));
      return true;
    }
    entry.data.resize(static_cast<size_t>(entry.size));
    size_t got = 0;
    while (got < entry.data.size()) {
      const la_ssize_t n = archive_read_data(archive_, entry.data.data() + got, entry.data.size() - got);
      if (n < 0) throw Error("shard " + path_ + ": entry '" + entry.name + "': " + archive_message(archive_));
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    if (got < entry.data.size()) {
      throw Error("shard " + path_ + ": entry '" + entry.name + "' is truncated (" + std::to_string(got) + " of " +
                  std::to_string(entry.data.size()) + " bytes)");
    }
    entry.data_read = true;
    return true;
  }
}

TarWriter::TarWriter(const std::string& path) : path_(path), archive_(archive_write_new()) {
  if (!archive_) throw Error(path + ": libarchive cannot allocate a writer");
  archive_write_set_format_pax_restricted(archive_);
  if (archive_write_open_filename(archive_, path.c_str()) != ARCHIVE_OK) {
    const std::string message = archive_message(archive_);
    archive_write_free(archive_);
    archive_ = nullptr;
    throw Error(path + ": cannot create (" + message + ")");
  }
}

TarWriter::~TarWriter() {
  if (archive_) archive_write_free(archive_);  // closes
}

void TarWriter::add(const std::string& name, const std::string& data) {
  if (!archive_) throw Error(path_ + ": tar writer is closed");
  archive_entry* entry = archive_entry_new();
  archive_entry_set_pathname(entry, name.c_str());
  archive_entry_set_size(entry, static_cast<la_int64_t>(data.size()));
  archive_entry_set_filetype(entry, AE_IFREG);
  archive_entry_set_perm(entry, 0644);
  archive_entry_set_mtime(entry, 0, 0);
  const int status = archive_write_header(archive_, entry);
  archive_entry_free(entry);
  if (status != ARCHIVE_OK)
    throw Error(path_ + ": cannot write entry '" + name + "' (" + archive_message(archive_) + ")");
  if (!data.empty() && archive_write_data(archive_, data.data(), data.size()) != static_cast<la_ssize_t>(data.size()))
    throw Error(path_ + ": cannot write entry '" + name + "' (" + archive_message(archive_) + ")");
}

void TarWriter::close() {
  if (!archive_) return;
  const int status = archive_write_close(archive_);
  const std::string message = status == ARCHIVE_OK ? "" : archive_message(archive_);
  archive_write_free(archive_);
  archive_ = nullptr;
  if (status != ARCHIVE_OK) throw Error(path_ + ": cannot finish the tar file (" + message + ")");
}

}  // namespace siglip2
