#include "data/tar.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <tuple>
#include <utility>

#include "common/error.hpp"
#include "data/shard_list.hpp"

namespace siglip2 {
namespace {

std::string archive_message(archive* a) {
  const char* m = archive_error_string(a);
  return m ? m : "unknown libarchive error";
}

}  // namespace

namespace {

std::string exit_text(int status) {
  if (WIFEXITED(status)) return "the command exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "the command was killed by signal " + std::to_string(WTERMSIG(status));
  return "the command ended abnormally";
}

// Starts /bin/sh -c `command` with stdout into a new pipe; returns (pid, read end). The read end is
// close-on-exec, so later commands do not inherit it and keep this one's pipe open.
std::pair<int, int> spawn(const std::string& command, const std::string& shard) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw Error("shard " + shard + ": cannot make a pipe (" + std::strerror(errno) + ")");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  const char* argv[] = {"/bin/sh", "-c", command.c_str(), nullptr};
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, "/bin/sh", &actions, nullptr, const_cast<char* const*>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    throw Error("shard " + shard + ": cannot start the command (" + std::strerror(rc) + ")");
  }
  return {static_cast<int>(pid), fds[0]};
}

}  // namespace

// libarchive's read callback for remote shards: the next bytes of the stream, 0 at its end, -1 with the
// stream's error.
struct TarReaderCallbacks {
  static la_ssize_t read(archive* a, void* self, const void** buffer) {
    auto* reader = static_cast<TarReader*>(self);
    try {
      const size_t n = reader->remote_->read(reader->chunk_.data(), reader->chunk_.size());
      *buffer = reader->chunk_.data();
      return static_cast<la_ssize_t>(n);
    } catch (const std::exception& e) {
      std::string message = e.what();  // "shard URL: why": TarReader::next names the shard itself
      const std::string prefix = "shard " + reader->path_ + ": ";
      if (message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
      archive_set_error(a, EIO, "%s", message.c_str());
      return -1;
    }
  }
};

TarReader::TarReader(const std::string& path, const RemoteOptions& remote, const std::atomic<bool>* stop,
                     int64_t offset, bool seek)
    : path_(path), archive_(archive_read_new()) {
  if (offset > 0 && seek && !is_pipe_shard(path)) {
    base_ = offset;
  } else {
    skip_ = offset;
  }
  if (!archive_) throw Error("shard " + path + ": libarchive cannot allocate a reader");
  archive_read_support_format_tar(archive_);
  archive_read_support_filter_all(archive_);  // .tar.gz etc. stream too
  int status;
  if (is_remote_shard(path)) {
    try {
      remote_ = std::make_unique<RemoteStream>(path, remote, stop, base_);
    } catch (...) {
      archive_read_free(archive_);
      archive_ = nullptr;
      throw;
    }
    chunk_.resize(1 << 20);
    status = archive_read_open(archive_, this, nullptr, &TarReaderCallbacks::read, nullptr);
  } else if (is_pipe_shard(path)) {
    try {
      std::tie(pid_, fd_) = spawn(path.substr(5), path);
    } catch (...) {
      archive_read_free(archive_);
      archive_ = nullptr;
      throw;
    }
    status = archive_read_open_fd(archive_, fd_, 1 << 20);
  } else if (base_ > 0) {
    file_fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (file_fd_ < 0 || ::lseek(file_fd_, base_, SEEK_SET) != base_) {
      const std::string why = std::strerror(errno);
      if (file_fd_ >= 0) ::close(file_fd_);
      file_fd_ = -1;
      archive_read_free(archive_);
      archive_ = nullptr;
      throw Error("shard " + path + ": cannot open at byte " + std::to_string(base_) + " (" + why + ")");
    }
    status = archive_read_open_fd(archive_, file_fd_, 1 << 20);
  } else {
    status = archive_read_open_filename(archive_, path.c_str(), 1 << 20);
  }
  if (status != ARCHIVE_OK) {
    std::string message = archive_message(archive_);
    archive_read_free(archive_);
    archive_ = nullptr;
    if (file_fd_ >= 0) ::close(file_fd_);  // the destructor does not run for a constructor that throws
    file_fd_ = -1;
    if (pid_ > 0) {
      ::close(fd_);
      fd_ = -1;
      const int exit = finish_command();  // its output is closed: it ends (or is stopped)
      if (!(WIFEXITED(exit) && WEXITSTATUS(exit) == 0)) message = exit_text(exit);
    }
    if (remote_) throw RemoteError("shard " + path + ": " + message);  // the stream's own reason, retries done
    throw Error("shard " + path + ": cannot open (" + message + ")");
  }
}

TarReader::~TarReader() {
  if (archive_) archive_read_free(archive_);
  if (file_fd_ >= 0) ::close(file_fd_);
  close_pipe();
}

bool TarReader::seekable() const {
  // One filter is the bare byte stream; more are decompressors (.tar.gz, .tar.zst, ...).
  return archive_ && pid_ <= 0 && archive_filter_count(archive_) == 1 &&
         archive_filter_code(archive_, 0) == ARCHIVE_FILTER_NONE;
}

int TarReader::finish_command() {
  // A command that still runs after its output closed (blocked elsewhere) is stopped: SIGTERM after 0.5 s,
  // SIGKILL after 2 s more.
  int status = 0;
  const auto start = std::chrono::steady_clock::now();
  bool termed = false, killed = false;
  for (;;) {
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || (r < 0 && errno != EINTR)) break;
    const auto waited = std::chrono::steady_clock::now() - start;
    if (!termed && waited > std::chrono::milliseconds(500)) {
      ::kill(pid_, SIGTERM);
      termed = true;
    } else if (!killed && waited > std::chrono::milliseconds(2500)) {
      ::kill(pid_, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
  return status;
}

void TarReader::close_pipe() {
  if (fd_ >= 0) ::close(fd_);  // a command still writing gets SIGPIPE
  fd_ = -1;
  if (pid_ > 0) finish_command();
}

bool TarReader::next(TarEntry& entry, bool read_data, int64_t max_bytes) {
  return next(entry, [read_data](const TarEntry&) { return read_data; }, max_bytes);
}

bool TarReader::next(TarEntry& entry, const std::function<bool(const TarEntry&)>& want_data, int64_t max_bytes) {
  if (!archive_) return false;  // a pipe's end was reached
  for (;;) {
    archive_entry* header = nullptr;
    const int status = archive_read_next_header(archive_, &header);
    if (status == ARCHIVE_EOF) {
      if (pid_ > 0) {
        // The end of the tar: the command should end now with status 0, else the shard is incomplete.
        archive_read_free(archive_);
        archive_ = nullptr;
        ::close(fd_);
        fd_ = -1;
        const int exit = finish_command();
        if (!(WIFEXITED(exit) && WEXITSTATUS(exit) == 0)) throw Error("shard " + path_ + ": " + exit_text(exit));
      }
      return false;
    }
    if (status < ARCHIVE_WARN) throw Error("shard " + path_ + ": " + archive_message(archive_));
    if (archive_entry_filetype(header) != AE_IFREG) continue;
    entry.name = archive_entry_pathname(header) ? archive_entry_pathname(header) : "";
    entry.offset = base_ + archive_read_header_position(archive_);
    entry.size = archive_entry_size_is_set(header) ? archive_entry_size(header) : 0;
    entry.data.clear();
    entry.data_read = false;
    if (entry.offset < skip_) {  // before the start offset of a reader that cannot seek
      if (archive_read_data_skip(archive_) < ARCHIVE_WARN)
        throw Error("shard " + path_ + ": entry '" + entry.name + "': " + archive_message(archive_));
      continue;
    }
    if (!want_data(entry) || entry.size > max_bytes) {
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
