#include "common/safetensors.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/error.hpp"

namespace siglip2::safetensors {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::string le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(v >> (8 * i));
  return out;
}

// A file built byte by byte: length, header as given (no padding), data.
std::string raw_file(const std::string& header, const std::string& data = "") {
  return le64(header.size()) + header + data;
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape, uint64_t begin,
                  uint64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(begin) + "," + std::to_string(end) + "]}";
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The path /proc/self/maps gives for the mapping that holds `p` ("" for an unnamed one).
std::string mapped_file_at(const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    std::string range, perms, offset, device, inode, file;
    fields >> range >> perms >> offset >> device >> inode >> file;
    const size_t dash = range.find('-');
    const uintptr_t begin = std::stoull(range.substr(0, dash), nullptr, 16);
    const uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (addr >= begin && addr < end) return file;
  }
  return "";
}

// Values from a formula, distinct per element, exact in every supported dtype.
at::Tensor sample(c10::ScalarType dtype, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const at::Tensor i = torch::arange(n, torch::kDouble);
  at::Tensor values;
  if (dtype == at::kBool)
    values = torch::remainder(i, 3) == 0;
  else if (dtype == at::kByte)
    values = torch::remainder(i * 37 + 200, 256);
  else if (dtype == at::kLong)
    values = i * 3'000'000'000.0 - 7;
  else if (at::isIntegralType(dtype, /*includeBool=*/false))
    values = i * 7 - 20;
  else
    values = i * 0.25 - 1.0;
  return values.to(dtype).reshape(shape);
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* test = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("siglip2_st_" + std::to_string(::getpid()) + "_" + test->test_suite_name() + "_" + test->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  std::string write_raw(const std::string& bytes, const std::string& name = "bad.safetensors") {
    std::ofstream(path(name), std::ios::binary) << bytes;
    return path(name);
  }

  // The message File::open rejects `bytes` with; checks it names the file and fits on one line.
  std::string open_error(const std::string& bytes) {
    const std::string p = write_raw(bytes);
    try {
      File::open(p);
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(p + ": ", 0), 0u) << message;
      EXPECT_EQ(message.find('\n'), std::string::npos) << message;
      return message;
    }
    ADD_FAILURE() << "File::open accepted a malformed file";
    return "";
  }

  std::string save_error(const std::vector<std::pair<std::string, at::Tensor>>& tensors) {
    try {
      save(path("out.safetensors"), tensors);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "save accepted bad input";
    return "";
  }

  fs::path dir_;
};

// ---- Round trips --------------------------------------------------------------------------------

class SafetensorsDtypeTest : public SafetensorsTest, public ::testing::WithParamInterface<c10::ScalarType> {};

TEST_P(SafetensorsDtypeTest, RoundTripsValuesShapesAndMetadata) {
  const c10::ScalarType dtype = GetParam();
  const std::vector<std::pair<std::string, at::Tensor>> tensors = {
      {"matrix", sample(dtype, {2, 3})},
      {"scalar", sample(dtype, {})},
      {"empty", sample(dtype, {0, 4})},
      {"vector", sample(dtype, {5})},
  };
  save(path("t.safetensors"), tensors, {{"step", "12"}, {"note", "ünïcode"}});

  const File file = File::open(path("t.safetensors"));
  EXPECT_EQ(file.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"step", "12"}, {"note", "ünïcode"}}));
  ASSERT_EQ(file.tensors().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    const at::Tensor got = file.get(name);
    EXPECT_EQ(got.scalar_type(), dtype) << name;
    EXPECT_EQ(got.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(torch::equal(got, expected)) << name;
    EXPECT_EQ(file.info(name).shape, expected.sizes().vec()) << name;
  }
  EXPECT_EQ(dtype_from_name(dtype_name(dtype)), dtype);
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, SafetensorsDtypeTest,
                         ::testing::Values(at::kDouble, at::kFloat, at::kHalf, at::kBFloat16, at::kLong, at::kInt,
                                           at::kShort, at::kChar, at::kByte, at::kBool),
                         [](const auto& info) { return dtype_name(info.param); });

TEST_F(SafetensorsTest, WritesTheReferenceLayoutByteForByte) {
  save(path("w.safetensors"), {{"w", torch::tensor({1.0f, 2.0f})}});
  std::string header = R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  const float values[] = {1.0f, 2.0f};
  const std::string expected = le64(header.size()) + header + std::string(reinterpret_cast<const char*>(values), 8);
  EXPECT_EQ(read_bytes(path("w.safetensors")), expected);
}

TEST_F(SafetensorsTest, OrdersTensorsByDtypeDescendingThenName) {
  save(path("o.safetensors"), {{"a", sample(at::kBool, {3})},
                               {"b", sample(at::kFloat, {1})},
                               {"c", sample(at::kLong, {1})},
                               {"d", sample(at::kHalf, {3})},
                               {"e", sample(at::kBFloat16, {1})},
                               {"f", sample(at::kDouble, {1})},
                               {"a2", sample(at::kFloat, {2})}});
  const File file = File::open(path("o.safetensors"));
  std::vector<std::string> order;
  for (const TensorInfo& t : file.tensors()) order.push_back(t.name);
  EXPECT_EQ(order, (std::vector<std::string>{"c", "f", "a2", "b", "e", "d", "a"}));
  EXPECT_EQ(file.info("c").begin, 0u);
  EXPECT_EQ(file.info("a").end, 8u + 8 + 8 + 4 + 2 + 6 + 3);
}

TEST_F(SafetensorsTest, SavesNonContiguousTensorsInRowMajorOrder) {
  const at::Tensor t = torch::arange(6, torch::kFloat).reshape({2, 3}).t();
  save(path("n.safetensors"), {{"t", t}, {"col", t.select(0, 1)}});
  const auto loaded = load(path("n.safetensors"));
  EXPECT_TRUE(torch::equal(loaded.at("t"), t));
  EXPECT_TRUE(torch::equal(loaded.at("col"), torch::tensor({1.0f, 4.0f})));
  EXPECT_TRUE(loaded.at("t").is_contiguous());
}

TEST_F(SafetensorsTest, KeepsAGivenFormatAndReplacesAnExistingFile) {
  save(path("m.safetensors"), {{"x", sample(at::kFloat, {4})}});
  save(path("m.safetensors"), {{"y", sample(at::kInt, {2})}}, {{"format", "mlx"}});
  const File file = File::open(path("m.safetensors"));
  EXPECT_EQ(file.metadata().at("format"), "mlx");
  EXPECT_FALSE(file.contains("x"));
  EXPECT_TRUE(torch::equal(file.get("y"), sample(at::kInt, {2})));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);  // no temp file left
}

// ---- Zero copy ----------------------------------------------------------------------------------

TEST_F(SafetensorsTest, GetReturnsAViewOfTheMappingThatOutlivesTheFile) {
  const at::Tensor expected = sample(at::kFloat, {64, 3});
  save(path("z.safetensors"), {{"w", expected}, {"h", sample(at::kHalf, {7})}});
  at::Tensor w, h;
  {
    const File file = File::open(path("z.safetensors"));
    w = file.get("w");
    h = file.get("h");
    EXPECT_EQ(w.data_ptr(), file.get("w").data_ptr());
  }
  EXPECT_EQ(mapped_file_at(w.data_ptr()), fs::canonical(path("z.safetensors")).string());
  EXPECT_EQ(mapped_file_at(h.data_ptr()), fs::canonical(path("z.safetensors")).string());
  EXPECT_TRUE(torch::equal(w, expected));
  EXPECT_TRUE(torch::equal(h, sample(at::kHalf, {7})));
}

TEST_F(SafetensorsTest, WritingIntoAViewLeavesTheFileAlone) {
  save(path("v.safetensors"), {{"w", sample(at::kFloat, {8})}});
  at::Tensor w = File::open(path("v.safetensors")).get("w");
  w.add_(100);
  EXPECT_TRUE(torch::equal(w, sample(at::kFloat, {8}) + 100));
  EXPECT_TRUE(torch::equal(File::open(path("v.safetensors")).get("w"), sample(at::kFloat, {8})));
}

TEST_F(SafetensorsTest, CopiesDataThatIsMisalignedForItsDtype) {
  // An unpadded 62-byte header puts the data at offset 70, which is not 4-byte aligned.
  const std::string header = "{" + entry("w", "F32", "[2]", 0, 8) + "}";
  const float values[] = {1.5f, -2.0f};
  const std::string p = write_raw(raw_file(header, std::string(reinterpret_cast<const char*>(values), 8)), "m.st");
  ASSERT_NE((8 + header.size()) % 4, 0u);
  const at::Tensor w = File::open(p).get("w");
  EXPECT_TRUE(torch::equal(w, torch::tensor({1.5f, -2.0f})));
  EXPECT_NE(mapped_file_at(w.data_ptr()), fs::canonical(p).string());
}

// ---- What the reader accepts --------------------------------------------------------------------

TEST_F(SafetensorsTest, AcceptsWhitespaceNullMetadataAndEmptyTensorsBetweenOthers) {
  const std::string header = "  {\"__metadata__\":null," + entry("a", "I16", "[2]", 0, 4) + "," +
                             entry("e", "F32", "[3,0]", 4, 4) + "," + entry("b", "U8", "[]", 4, 5) + "}    ";
  const File file = File::open(write_raw(raw_file(header, std::string("\x01\x00\xff\xff\x07", 5)), "ok.st"));
  EXPECT_TRUE(file.metadata().empty());
  ASSERT_EQ(file.tensors().size(), 3u);
  EXPECT_EQ(file.tensors()[1].name, "e");
  EXPECT_TRUE(torch::equal(file.get("a"), torch::tensor({1, -1}, torch::kShort)));
  EXPECT_EQ(file.get("e").sizes(), (std::vector<int64_t>{3, 0}));
  EXPECT_EQ(file.get("b").dim(), 0);
  EXPECT_EQ(file.get("b").item<uint8_t>(), 7);
}

TEST_F(SafetensorsTest, AcceptsAFileWithoutTensors) {
  const File file = File::open(write_raw(raw_file("{}      "), "empty.st"));
  EXPECT_TRUE(file.tensors().empty());
  EXPECT_TRUE(file.metadata().empty());
}

TEST_F(SafetensorsTest, InfoNamesTheFileAndTheMissingTensor) {
  save(path("i.safetensors"), {{"w", sample(at::kFloat, {1})}});
  const File file = File::open(path("i.safetensors"));
  EXPECT_THAT([&] { file.info("nope"); },
              ::testing::ThrowsMessage<Error>(AllOf(HasSubstr(path("i.safetensors")), HasSubstr("'nope'"))));
  EXPECT_THROW(file.get("nope"), Error);
}

// ---- What the reader rejects --------------------------------------------------------------------

TEST_F(SafetensorsTest, RejectsAFileShorterThanTheLength) {
  EXPECT_THAT(open_error(std::string("\x08\0\0\0\0", 5)), HasSubstr("file is 5 bytes, too short"));
  EXPECT_THAT(open_error(""), HasSubstr("file is 0 bytes, too short"));
}

TEST_F(SafetensorsTest, RejectsAHeaderOverTheLimit) {
  EXPECT_THAT(open_error(le64(100'000'001) + "{}"),
              HasSubstr("header length 100000001 exceeds the limit of 100000000 bytes"));
}

TEST_F(SafetensorsTest, RejectsAHeaderLongerThanTheFile) {
  EXPECT_THAT(open_error(le64(100) + std::string(20, ' ')),
              HasSubstr("header length 100 runs past the end of the file (28 bytes)"));
  EXPECT_THAT(open_error(le64(~uint64_t{0}) + "{}"), HasSubstr("exceeds the limit"));
}

TEST_F(SafetensorsTest, RejectsInvalidJson) {
  EXPECT_THAT(open_error(raw_file("{\"w\":")), HasSubstr("header is not valid UTF-8 JSON"));
  EXPECT_THAT(open_error(raw_file("{} {}")), HasSubstr("header is not valid UTF-8 JSON"));
  EXPECT_THAT(open_error(raw_file("")), HasSubstr("header is not valid UTF-8 JSON"));
  EXPECT_THAT(open_error(raw_file("{\"w\xff\":{}}")),
              AllOf(HasSubstr("header is not valid UTF-8 JSON"), Not(HasSubstr("\xff"))));
}

// Deeper values would overflow the stack when dumped into an error message (json_limits.hpp).
TEST_F(SafetensorsTest, RejectsAHeaderNestedTooDeep) {
  const std::string deep = "{\"__metadata__\":" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THAT(open_error(raw_file(deep)), HasSubstr("header is nested more than 64 levels deep"));
  const std::string ok = "{\"__metadata__\":" + std::string(60, '[') + std::string(60, ']') + "}";
  EXPECT_THAT(open_error(raw_file(ok)), HasSubstr("__metadata__ must be an object of strings"));
}

TEST_F(SafetensorsTest, RejectsAHeaderThatIsNotAnObject) {
  EXPECT_THAT(open_error(raw_file("[1, 2]")), HasSubstr("header must be a JSON object, got a JSON array"));
}

TEST_F(SafetensorsTest, RejectsMetadataThatIsNotStrings) {
  EXPECT_THAT(open_error(raw_file(R"({"__metadata__":{"format":"pt","step":12}})")),
              HasSubstr("__metadata__ value for key 'step' must be a string, got 12"));
  EXPECT_THAT(open_error(raw_file(R"({"__metadata__":["pt"]})")),
              HasSubstr("__metadata__ must be an object of strings, got a JSON array"));
}

TEST_F(SafetensorsTest, RejectsAnEntryThatIsNotAnObject) {
  EXPECT_THAT(open_error(raw_file(R"({"w":[0,4]})")),
              HasSubstr("tensor 'w': entry must be an object with dtype, shape and data_offsets"));
}

TEST_F(SafetensorsTest, RejectsMissingFields) {
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1]}})", "abcd")),
              HasSubstr("tensor 'w': missing field 'data_offsets'"));
  EXPECT_THAT(open_error(raw_file(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd")),
              HasSubstr("tensor 'w': missing field 'dtype'"));
}

TEST_F(SafetensorsTest, RejectsExtraFields) {
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", "abcd")),
              HasSubstr("tensor 'w': unexpected field 'x'"));
}

TEST_F(SafetensorsTest, RejectsFieldsOfTheWrongType) {
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}})", "abcd")),
              HasSubstr("tensor 'w': dtype must be a string, got 32"));
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}})", "abcd")),
              HasSubstr("tensor 'w': shape must be a list of non-negative integers"));
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", "abcd")),
              HasSubstr("tensor 'w': shape must be a list of non-negative integers, got [1.0]"));
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4]}})", "abcd")),
              HasSubstr("tensor 'w': data_offsets must be two non-negative integers, got [4]"));
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}})", "abcd")),
              HasSubstr("tensor 'w': data_offsets must be two non-negative integers"));
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,-4]}})", "abcd")),
              HasSubstr("tensor 'w': data_offsets must be two non-negative integers, got [0,-4]"));
  EXPECT_THAT(
      open_error(raw_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551616]}})", "abcd")),
      HasSubstr("tensor 'w': data_offsets must be two non-negative integers"));
}

TEST_F(SafetensorsTest, RejectsANegativeDimension) {
  EXPECT_THAT(open_error(raw_file("{" + entry("w", "F32", "[2,-1]", 0, 0) + "}")),
              HasSubstr("tensor 'w': shape must be a list of non-negative integers, got [2,-1]"));
}

TEST_F(SafetensorsTest, RejectsOffsetsWithAHole) {
  const std::string header = "{" + entry("a", "F32", "[1]", 0, 4) + "," + entry("b", "F32", "[1]", 8, 12) + "}";
  EXPECT_THAT(open_error(raw_file(header, std::string(12, '\0'))),
              HasSubstr("tensor 'b': data_offsets [8, 12] leave a hole: the data before it ends at 4 (tensor 'a')"));
  EXPECT_THAT(open_error(raw_file("{" + entry("a", "F32", "[1]", 4, 8) + "}", std::string(8, '\0'))),
              HasSubstr("tensor 'a': data_offsets [4, 8] leave a hole: the data before it ends at 0"));
}

TEST_F(SafetensorsTest, RejectsOverlappingOffsets) {
  const std::string header = "{" + entry("a", "F32", "[2]", 0, 8) + "," + entry("b", "F32", "[2]", 4, 12) + "}";
  EXPECT_THAT(open_error(raw_file(header, std::string(12, '\0'))),
              HasSubstr("tensor 'b': data_offsets [4, 12] overlap tensor 'a', which ends at 8"));
}

TEST_F(SafetensorsTest, RejectsOffsetsThatEndBeforeTheyBegin) {
  EXPECT_THAT(open_error(raw_file("{" + entry("a", "F32", "[1]", 4, 0) + "}", std::string(4, '\0'))),
              HasSubstr("tensor 'a': data_offsets [4, 0] end before they begin"));
}

TEST_F(SafetensorsTest, RejectsASizeThatDoesNotMatchDtypeAndShape) {
  EXPECT_THAT(open_error(raw_file("{" + entry("w", "F32", "[4]", 0, 12) + "}", std::string(12, '\0'))),
              HasSubstr("tensor 'w': data_offsets [0, 12] do not match dtype F32 × shape [4] (16 bytes)"));
  EXPECT_THAT(open_error(raw_file("{" + entry("s", "BF16", "[]", 0, 4) + "}", std::string(4, '\0'))),
              HasSubstr("tensor 's': data_offsets [0, 4] do not match dtype BF16 × shape [] (2 bytes)"));
}

TEST_F(SafetensorsTest, RejectsTrailingBytes) {
  EXPECT_THAT(open_error(raw_file("{" + entry("w", "F32", "[1]", 0, 4) + "}", std::string(5, '\0'))),
              HasSubstr("5 bytes follow the header but the tensors cover only 4 (trailing bytes)"));
  EXPECT_THAT(open_error(raw_file("{}", "x")), HasSubstr("trailing bytes"));
}

TEST_F(SafetensorsTest, RejectsTruncatedData) {
  EXPECT_THAT(open_error(raw_file("{" + entry("w", "F32", "[2]", 0, 8) + "}", std::string(5, '\0'))),
              HasSubstr("the tensors need 8 bytes of data but only 5 follow the header"));
}

TEST_F(SafetensorsTest, RejectsUnsupportedDtypes) {
  EXPECT_THAT(open_error(raw_file("{" + entry("q", "F8_E4M3", "[1]", 0, 1) + "}", "x")),
              HasSubstr("tensor 'q': unsupported dtype 'F8_E4M3' (supported: F64, F32"));
  EXPECT_THAT(open_error(raw_file("{" + entry("c", "C64", "[1]", 0, 8) + "}", std::string(8, '\0'))),
              HasSubstr("tensor 'c': unsupported dtype 'C64'"));
}

TEST_F(SafetensorsTest, RejectsDuplicateKeys) {
  const std::string w = entry("w", "F32", "[1]", 0, 4);
  EXPECT_THAT(open_error(raw_file("{" + w + "," + w + "}", "abcd")), HasSubstr("header has key 'w' twice"));
  EXPECT_THAT(open_error(raw_file(R"({"w":{"dtype":"F32","dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd")),
              HasSubstr("tensor 'w': field 'dtype' appears twice"));
  EXPECT_THAT(open_error(raw_file(R"({"__metadata__":{"a":"1","a":"2"}})")),
              HasSubstr("__metadata__ has key 'a' twice"));
}

TEST_F(SafetensorsTest, RejectsAShapeWhoseSizeOverflows) {
  EXPECT_THAT(open_error(raw_file("{" + entry("w", "F32", "[4294967296,4294967296,2]", 0, 0) + "}")),
              HasSubstr("tensor 'w': shape [4294967296, 4294967296, 2] has more elements than fit in 64 bits"));
  EXPECT_THAT(open_error(raw_file("{" + entry("w", "F64", "[2305843009213693952,2]", 0, 0) + "}")),
              HasSubstr("tensor 'w': dtype F64 × shape [2305843009213693952, 2] is more bytes than fit in 64 bits"));
  EXPECT_THAT(open_error(raw_file("{" + entry("w", "U8", "[9223372036854775808]", 0, 0) + "}")),
              HasSubstr("tensor 'w': shape must be a list of non-negative integers"));
}

TEST_F(SafetensorsTest, KeepsMessagesOnOneLineForHostileNames) {
  EXPECT_THAT(open_error(raw_file(R"({"a\nb":{"dtype":"X","shape":[],"data_offsets":[0,0]}})")),
              HasSubstr("tensor 'a\\nb': unsupported dtype 'X'"));
}

TEST_F(SafetensorsTest, RejectsBoolDataThatIsNotZeroOrOne) {
  const File file = File::open(
      write_raw(raw_file("{" + entry("b", "BOOL", "[3]", 0, 3) + "}", std::string("\x01\x02\x00", 3)), "b.st"));
  EXPECT_THAT([&] { file.get("b"); },
              ::testing::ThrowsMessage<Error>(HasSubstr("tensor 'b': BOOL data holds a byte other than 0 or 1")));
}

// ---- What the writer rejects --------------------------------------------------------------------

TEST_F(SafetensorsTest, SaveRejectsDuplicateAndReservedNames) {
  EXPECT_THAT(save_error({{"w", sample(at::kFloat, {1})}, {"w", sample(at::kFloat, {2})}}),
              HasSubstr("tensor 'w': given twice"));
  EXPECT_THAT(save_error({{"__metadata__", sample(at::kFloat, {1})}}), HasSubstr("reserved for the metadata"));
  EXPECT_THAT(save_error({{"bad\xff", sample(at::kFloat, {1})}}),
              HasSubstr("tensor name 'bad\\xff' is not valid UTF-8"));
}

TEST_F(SafetensorsTest, SaveRejectsUnsupportedAndUndefinedTensors) {
  EXPECT_THAT(save_error({{"ok", sample(at::kFloat, {1})}, {"z", torch::zeros({2}, torch::kComplexFloat)}}),
              AllOf(HasSubstr("tensor 'z'"), HasSubstr("ComplexFloat cannot be stored")));
  EXPECT_THAT(save_error({{"u", at::Tensor()}}), HasSubstr("tensor 'u': undefined tensor"));
  EXPECT_THAT(save_error({{"s", torch::eye(3).to_sparse()}}), HasSubstr("tensor 's': only dense"));
}

TEST_F(SafetensorsTest, AFailedSaveLeavesTheOldFileAndNoTemporaryFile) {
  save(path("out.safetensors"), {{"w", sample(at::kFloat, {3})}});
  const std::string before = read_bytes(path("out.safetensors"));
  save_error({{"w", sample(at::kFloat, {3})}, {"z", torch::zeros({1}, torch::kComplexDouble)}});
  EXPECT_EQ(read_bytes(path("out.safetensors")), before);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST(SafetensorsDtypeNames, MapBothWaysAndRejectTheRest) {
  EXPECT_EQ(dtype_name(at::kBFloat16), "BF16");
  EXPECT_EQ(dtype_from_name("BOOL"), at::kBool);
  EXPECT_THROW(dtype_from_name("f32"), Error);
  EXPECT_THROW(dtype_name(at::kComplexFloat), Error);
}

}  // namespace
}  // namespace siglip2::safetensors
