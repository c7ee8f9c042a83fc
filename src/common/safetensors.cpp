#include "common/safetensors.hpp"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <tuple>
#include <utility>

#include "common/error.hpp"
#include "common/fs.hpp"
#include "common/json_limits.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian; so is this reader");

namespace siglip2::safetensors {
namespace {

using nlohmann::json;

struct Dtype {
  c10::ScalarType type;
  const char* name;
  int order;  // position in the reference's Dtype enum: the writer sorts by it, descending
};

constexpr Dtype kDtypes[] = {
    {at::kDouble, "F64", 19}, {at::kFloat, "F32", 17}, {at::kHalf, "F16", 13},  {at::kBFloat16, "BF16", 14},
    {at::kLong, "I64", 20},   {at::kInt, "I32", 15},   {at::kShort, "I16", 11}, {at::kChar, "I8", 5},
    {at::kByte, "U8", 4},     {at::kBool, "BOOL", 0},
};
constexpr const char* kSupported = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";

const Dtype* find_dtype(c10::ScalarType type) {
  for (const auto& d : kDtypes)
    if (d.type == type) return &d;
  return nullptr;
}

const Dtype* find_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

// Text from untrusted files goes into one-line messages: escape control characters, and every
// non-ASCII byte when the text may not be valid UTF-8.
std::string escape(const std::string& s, bool non_ascii) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20 || c == 0x7f || (non_ascii && c >= 0x80)) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Names that reached here were valid UTF-8 in the JSON header.
std::string quote(const std::string& s) {
  return "'" + escape(s, false) + "'";
}

// A JSON value in a message, cut short: the value may be a 100 MB array.
std::string brief(const json& value) {
  std::string s = value.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() <= 60 ? s : s.substr(0, 57) + "...";
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string offsets_text(const TensorInfo& t) {
  return "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
}

std::string errno_text() {
  return std::strerror(errno);
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// nlohmann::json keeps the last of duplicate keys without a word; the reference rejects them.
json parse_header(const std::string& path, const char* begin, const char* end) {
  struct Frame {
    std::set<std::string> keys;
    std::string last_key;
  };
  std::vector<Frame> frames;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth)  // dump(), copies and comparisons of deeper values recurse (json_limits.hpp)
      throw Error(path + ": header is nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
    if (event == json::parse_event_t::object_start) {
      frames.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      frames.pop_back();
    } else if (event == json::parse_event_t::key) {
      const auto& key = parsed.get_ref<const std::string&>();
      Frame& frame = frames.back();
      if (!frame.keys.insert(key).second) {
        if (frames.size() == 1) throw Error(path + ": header has key " + quote(key) + " twice");
        const std::string& owner = frames.front().last_key;
        if (frames.size() == 2 && owner == "__metadata__")
          throw Error(path + ": __metadata__ has key " + quote(key) + " twice");
        if (frames.size() == 2)
          throw Error(path + ": tensor " + quote(owner) + ": field " + quote(key) + " appears twice");
        throw Error(path + ": header has key " + quote(key) + " twice inside " + quote(owner));
      }
      frame.last_key = key;
    }
    return true;
  };
  try {
    return json::parse(begin, end, on_event);
  } catch (const json::exception& e) {
    throw Error(path + ": header is not valid UTF-8 JSON: " + escape(e.what(), true));
  }
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& value) {
  std::map<std::string, std::string> metadata;
  if (value.is_null()) return metadata;  // the reference reads null as "no metadata"
  if (!value.is_object())
    throw Error(path + ": __metadata__ must be an object of strings, got a JSON " + value.type_name());
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string())
      throw Error(path + ": __metadata__ value for key " + quote(key) + " must be a string, got " + brief(v));
    metadata.emplace(key, v.get<std::string>());
  }
  return metadata;
}

TensorInfo parse_entry(const std::string& path, const std::string& name, const json& entry) {
  const std::string where = path + ": tensor " + quote(name) + ": ";
  if (!entry.is_object())
    throw Error(where + "entry must be an object with dtype, shape and data_offsets, got " + brief(entry));
  for (const auto& [key, v] : entry.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw Error(where + "unexpected field " + quote(key) + " (allowed: dtype, shape, data_offsets)");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!entry.contains(field)) throw Error(where + "missing field '" + field + "'");

  TensorInfo info;
  info.name = name;
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) throw Error(where + "dtype must be a string, got " + brief(dtype));
  const Dtype* d = find_dtype(dtype.get<std::string>());
  if (!d)
    throw Error(where + "unsupported dtype " + quote(dtype.get<std::string>()) + " (supported: " + kSupported + ")");
  info.dtype = d->type;

  const json& shape = entry["shape"];
  bool shape_ok = shape.is_array();
  for (size_t i = 0; shape_ok && i < shape.size(); ++i)
    shape_ok = shape[i].is_number_unsigned() &&
               shape[i].get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!shape_ok) throw Error(where + "shape must be a list of non-negative integers, got " + brief(shape));
  for (const auto& dim : shape) info.shape.push_back(static_cast<int64_t>(dim.get<uint64_t>()));

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    throw Error(where + "data_offsets must be two non-negative integers, got " + brief(offsets));
  info.begin = offsets[0].get<uint64_t>();
  info.end = offsets[1].get<uint64_t>();
  return info;
}

// The rules of the reference's Metadata::validate: in offset order, each tensor starts where the
// previous one ended (the first at 0) and spans exactly nelements * element size bytes.
void check_layout(const std::string& path, const std::vector<TensorInfo>& tensors, uint64_t data_size) {
  uint64_t expected_begin = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& t : tensors) {
    const std::string where = path + ": tensor " + quote(t.name) + ": ";
    if (t.end < t.begin) throw Error(where + offsets_text(t) + " end before they begin");
    if (t.begin > expected_begin)
      throw Error(where + offsets_text(t) + " leave a hole: the data before it ends at " +
                  std::to_string(expected_begin) + (previous ? " (tensor " + quote(previous->name) + ")" : ""));
    if (t.begin < expected_begin)
      throw Error(where + offsets_text(t) + " overlap tensor " + quote(previous->name) + ", which ends at " +
                  std::to_string(expected_begin));
    const std::string dtype = dtype_name(t.dtype);
    uint64_t elements = 1;
    for (int64_t dim : t.shape)
      if (__builtin_mul_overflow(elements, static_cast<uint64_t>(dim), &elements))
        throw Error(where + "shape " + shape_text(t.shape) + " has more elements than fit in 64 bits");
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(elements, static_cast<uint64_t>(c10::elementSize(t.dtype)), &bytes))
      throw Error(where + "dtype " + dtype + " × shape " + shape_text(t.shape) + " is more bytes than fit in 64 bits");
    if (t.end - t.begin != bytes)
      throw Error(where + offsets_text(t) + " do not match dtype " + dtype + " × shape " + shape_text(t.shape) + " (" +
                  std::to_string(bytes) + " bytes)");
    expected_begin = t.end;
    previous = &t;
  }
  if (expected_begin > data_size)
    throw Error(path + ": the tensors need " + std::to_string(expected_begin) + " bytes of data but only " +
                std::to_string(data_size) + " follow the header (truncated file?)");
  if (expected_begin < data_size)
    throw Error(path + ": " + std::to_string(data_size) + " bytes follow the header but the tensors cover only " +
                std::to_string(expected_begin) + " (trailing bytes)");
}

class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// A temporary file next to the target, renamed over it by commit(); removed if never committed. It
// streams, unlike write_file_atomic, so a multi-GB checkpoint is never held in memory twice.
class AtomicWriter {
 public:
  explicit AtomicWriter(std::string path) : path_(std::move(path)) {
    std::random_device rd;
    tmp_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(path_ + ": cannot create temporary file " + quote(tmp_) + ": " + errno_text());
  }
  ~AtomicWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t n = ::write(fd_, p, std::min<size_t>(size, size_t{1} << 30));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) throw Error(path_ + ": cannot write: " + errno_text());
      p += n;
      size -= static_cast<size_t>(n);
    }
  }

  void commit() {
    if (::fsync(fd_) != 0) throw Error(path_ + ": cannot flush: " + errno_text());
    int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) throw Error(path_ + ": cannot close: " + errno_text());
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      throw Error(path_ + ": cannot move " + quote(tmp_) + " into place: " + errno_text());
    committed_ = true;
    std::filesystem::path target(path_);
    fsync_directory(target.has_parent_path() ? target.parent_path().string() : ".");
  }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

std::string json_string(const std::string& path, const std::string& s, const char* what) {
  try {
    return json(s).dump();
  } catch (const json::exception&) {
    throw Error(path + ": " + what + " '" + escape(s, true) + "' is not valid UTF-8");
  }
}

}  // namespace

struct File::Mapping {
  Mapping(void* a, size_t s) : addr(a), size(s) {}
  ~Mapping() { ::munmap(addr, size); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  void* addr;
  size_t size;
};

std::string dtype_name(c10::ScalarType dtype) {
  if (const Dtype* d = find_dtype(dtype)) return d->name;
  throw Error(std::string("dtype ") + c10::toString(dtype) +
              " cannot be stored in safetensors (supported: " + kSupported + ")");
}

c10::ScalarType dtype_from_name(const std::string& name) {
  if (const Dtype* d = find_dtype(name)) return d->type;
  throw Error("unsupported safetensors dtype " + quote(name) + " (supported: " + kSupported + ")");
}

File File::open(const std::string& path) {
  FdGuard fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) throw Error(path + ": cannot open: " + errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throw Error(path + ": cannot stat: " + errno_text());
  if (!S_ISREG(st.st_mode)) throw Error(path + ": not a regular file");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8)
    throw Error(path + ": file is " + std::to_string(file_size) + " bytes, too short for the 8-byte header length");

  // Writable but private: a caller may modify a returned tensor in place without crashing, and
  // the file never changes.
  void* addr = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd.get(), 0);
  if (addr == MAP_FAILED) throw Error(path + ": cannot map: " + errno_text());
  File file;
  file.path_ = path;
  file.mapping_ = std::make_shared<const Mapping>(addr, file_size);
  const auto* bytes = static_cast<const uint8_t*>(addr);

  const uint64_t header_size = read_le64(bytes);
  if (header_size > kMaxHeaderSize)
    throw Error(path + ": header length " + std::to_string(header_size) + " exceeds the limit of " +
                std::to_string(kMaxHeaderSize) + " bytes");
  if (header_size > file_size - 8)
    throw Error(path + ": header length " + std::to_string(header_size) + " runs past the end of the file (" +
                std::to_string(file_size) + " bytes)");
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  const json header = parse_header(path, header_begin, header_begin + header_size);
  if (!header.is_object()) throw Error(path + ": header must be a JSON object, got a JSON " + header.type_name());

  for (const auto& [key, value] : header.items()) {
    if (key == "__metadata__")
      file.metadata_ = parse_metadata(path, value);
    else
      file.tensors_.push_back(parse_entry(path, key, value));
  }
  std::sort(file.tensors_.begin(), file.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  file.data_start_ = 8 + header_size;
  check_layout(path, file.tensors_, file_size - file.data_start_);
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  return file;
}

const TensorInfo& File::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end())
    throw Error(path_ + ": no tensor " + quote(name) + " (the file has " + std::to_string(tensors_.size()) +
                " tensors)");
  return tensors_[it->second];
}

at::Tensor File::get(const std::string& name) const {
  const TensorInfo& t = info(name);
  const auto options = at::TensorOptions().dtype(t.dtype);
  if (t.begin == t.end) return at::empty(t.shape, options);
  auto* data = static_cast<uint8_t*>(mapping_->addr) + data_start_ + t.begin;
  const size_t bytes = t.end - t.begin;
  // Any byte but 0 or 1 in a bool tensor is undefined behaviour in torch's kernels.
  if (t.dtype == at::kBool && std::any_of(data, data + bytes, [](uint8_t b) { return b > 1; }))
    throw Error(path_ + ": tensor " + quote(name) + ": BOOL data holds a byte other than 0 or 1");
  if (reinterpret_cast<uintptr_t>(data) % c10::elementSize(t.dtype) == 0) {
    std::shared_ptr<const Mapping> keep_alive = mapping_;
    return at::from_blob(
        data, t.shape, [keep_alive](void*) {}, options);
  }
  at::Tensor copy = at::empty(t.shape, options);
  std::memcpy(copy.data_ptr(), data, bytes);
  return copy;
}

std::map<std::string, at::Tensor> load(const std::string& path) {
  const File file = File::open(path);
  std::map<std::string, at::Tensor> out;
  for (const TensorInfo& t : file.tensors()) out.emplace(t.name, file.get(t.name));
  return out;
}

void save(const std::string& path, const NamedTensors& tensors, const std::map<std::string, std::string>& metadata) {
  struct Entry {
    const std::string* name;
    const at::Tensor* tensor;
    const Dtype* dtype;
    uint64_t bytes;
  };
  std::vector<Entry> entries;
  std::set<std::string> names;
  for (const auto& [name, tensor] : tensors) {
    const std::string where = path + ": tensor " + quote(name) + ": ";
    if (name == "__metadata__") throw Error(where + "the name is reserved for the metadata");
    if (!names.insert(name).second) throw Error(where + "given twice");
    if (!tensor.defined()) throw Error(where + "undefined tensor");
    if (tensor.layout() != at::kStrided) throw Error(where + "only dense (strided) tensors can be saved");
    const Dtype* dtype = find_dtype(tensor.scalar_type());
    if (!dtype)
      throw Error(where + "dtype " + c10::toString(tensor.scalar_type()) +
                  " cannot be stored in safetensors (supported: " + kSupported + ")");
    entries.push_back({&name, &tensor, dtype, static_cast<uint64_t>(tensor.numel()) * tensor.element_size()});
  }
  // The reference writer's order: dtype descending (largest alignment first), then name. Every
  // tensor then starts aligned for its dtype, since the header is padded to 8 bytes.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.dtype->order != b.dtype->order) return a.dtype->order > b.dtype->order;
    return *a.name < *b.name;
  });

  std::map<std::string, std::string> all_metadata = metadata;
  all_metadata.emplace("format", "pt");
  std::string header = "{\"__metadata__\":{";
  bool first = true;
  for (const auto& [key, value] : all_metadata) {
    header +=
        (first ? "" : ",") + json_string(path, key, "metadata key") + ":" + json_string(path, value, "metadata value");
    first = false;
  }
  header += "}";
  uint64_t offset = 0;
  for (const Entry& e : entries) {
    std::string shape;
    for (int64_t dim : e.tensor->sizes()) shape += (shape.empty() ? "" : ",") + std::to_string(dim);
    header += "," + json_string(path, *e.name, "tensor name") + ":{\"dtype\":\"" + e.dtype->name + "\",\"shape\":[" +
              shape + "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + e.bytes) + "]}";
    offset += e.bytes;
  }
  header += "}";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  if (header.size() > kMaxHeaderSize)
    throw Error(path + ": header would be " + std::to_string(header.size()) + " bytes, over the limit of " +
                std::to_string(kMaxHeaderSize));

  AtomicWriter out(path);
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(static_cast<uint64_t>(header.size()) >> (8 * i));
  out.write(length, sizeof length);
  out.write(header.data(), header.size());
  for (const Entry& e : entries) {
    if (e.bytes == 0) continue;
    // One tensor at a time on the CPU, so a GPU model is never copied to host memory whole.
    const at::Tensor data = e.tensor->cpu().resolve_neg().contiguous();
    out.write(data.data_ptr(), e.bytes);
  }
  out.commit();
}

}  // namespace siglip2::safetensors
