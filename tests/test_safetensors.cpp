#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <numeric>

#include "io_fixtures.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using test::read_all;
using test::safetensors_bytes;
using test::TempDir;
using test::write_bytes;

const std::string kReferenceFile =
    std::string(SLIDESPARSE_TEST_DATA_DIR) + "/reference.safetensors";

std::vector<std::uint8_t> pattern_bytes(std::uint64_t n, std::uint8_t salt) {
  std::vector<std::uint8_t> v(n);
  for (std::uint64_t i = 0; i < n; ++i) v[i] = static_cast<std::uint8_t>(i * 31 + salt);
  return v;
}

template <typename T>
T load(const std::uint8_t* p, std::size_t index) {
  T value;
  std::memcpy(&value, p + index * sizeof(T), sizeof(T));
  return value;
}

// ---- round trips ----------------------------------------------------------------------

TEST(Safetensors, RoundTripEveryDType) {
  TempDir tmp;
  const std::string path = tmp.file("all.safetensors");
  const DType dtypes[] = {DType::BF16, DType::F16, DType::F32, DType::I8,
                          DType::U8,   DType::I32, DType::I64, DType::F8_E4M3};
  std::vector<TensorSpec> specs;
  for (const DType d : dtypes)
    specs.push_back({std::string("t_") + dtype_name(d), d, {3, 5 + static_cast<std::int64_t>(d)}});
  std::vector<std::vector<std::uint8_t>> contents;
  {
    SafetensorsWriter w(path, specs, {{"format", "pt"}, {"note", "round trip"}});
    for (std::size_t i = 0; i < specs.size(); ++i) {
      contents.push_back(pattern_bytes(specs[i].nbytes(), static_cast<std::uint8_t>(i)));
      w.write(specs[i].name, contents[i].data(), contents[i].size());
    }
    w.finish();
    EXPECT_EQ(fs::file_size(path), w.total_bytes());
  }
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "round trip"}}));
  ASSERT_EQ(f.tensors().size(), specs.size());
  std::uint64_t offset = 0;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const TensorInfo& t = f.tensors()[i];  // file order is spec order
    EXPECT_EQ(t.name, specs[i].name);
    EXPECT_EQ(t.dtype, specs[i].dtype);
    EXPECT_EQ(t.shape, specs[i].shape);
    EXPECT_EQ(t.numel(), specs[i].numel());
    EXPECT_EQ(t.begin, offset);
    EXPECT_EQ(t.nbytes(), specs[i].nbytes());
    EXPECT_EQ(std::memcmp(f.data(t), contents[i].data(), t.nbytes()), 0) << t.name;
    EXPECT_EQ(&f.at(t.name), &t);
    offset = t.end;
  }
  EXPECT_EQ(f.find("missing"), nullptr);
}

TEST(Safetensors, HeaderPaddedWithSpacesToEightBytes) {
  TempDir tmp;
  const std::string path = tmp.file("pad.safetensors");
  const std::uint8_t byte = 7;
  SafetensorsWriter w(path, {{"x", DType::U8, {1}}});
  w.write("x", &byte, 1);
  w.finish();
  const std::string bytes = read_all(path);
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.header_length() % 8, 0u);
  EXPECT_EQ(bytes[8], '{');
  EXPECT_EQ(bytes[8 + f.header_length() - 1], ' ');
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f.data(f.at("x"))) % 8, 0u);
  EXPECT_EQ(*f.data(f.at("x")), 7);
}

TEST(Safetensors, ChunkedWritesOfLargeTensor) {
  TempDir tmp;
  const std::string path = tmp.file("big.safetensors");
  const std::vector<TensorSpec> specs = {{"a", DType::BF16, {3, 4'000'000}},
                                         {"b", DType::I8, {17}}};
  const auto a = pattern_bytes(specs[0].nbytes(), 1);
  const auto b = pattern_bytes(specs[1].nbytes(), 2);
  {
    SafetensorsWriter w(path, specs);
    w.begin_tensor("a");
    std::uint64_t pos = 0;
    for (const std::uint64_t chunk :
         {std::uint64_t{1}, std::uint64_t{9'000'001}, std::uint64_t{0}}) {
      w.write_chunk(a.data() + pos, chunk);
      pos += chunk;
    }
    w.write_chunk(a.data() + pos, a.size() - pos);
    w.begin_tensor("b");  // ends "a"
    w.write_chunk(b.data(), b.size());
    w.finish();  // ends "b"
  }
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(std::memcmp(f.data(f.at("a")), a.data(), a.size()), 0);
  EXPECT_EQ(std::memcmp(f.data(f.at("b")), b.data(), b.size()), 0);
}

TEST(Safetensors, EmptyFileWithNoTensors) {
  TempDir tmp;
  const std::string path = tmp.file("none.safetensors");
  SafetensorsWriter w(path, {});
  w.finish();
  const SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

// ---- compatibility with the reference (Rust/Python) implementation ---------------------

TEST(Safetensors, ReadsFileWrittenByReferenceImplementation) {
  const SafetensorsFile f = SafetensorsFile::open(kReferenceFile);
  EXPECT_EQ(f.metadata().at("source"), "safetensors-python");
  ASSERT_EQ(f.tensors().size(), 10u);

  const TensorInfo& bf16 = f.at("bf16");
  EXPECT_EQ(bf16.dtype, DType::BF16);
  EXPECT_EQ(bf16.shape, (std::vector<std::int64_t>{2, 3}));
  const float bf16_expected[] = {0.5f, -1.0f, 2.0f, 3.140625f, -0.0078125f, 65280.0f};
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(bf16_to_float(load<std::uint16_t>(f.data(bf16), i)), bf16_expected[i]);

  const TensorInfo& f16 = f.at("f16");
  const float f16_expected[] = {1.0f, -2.5f, 1.0f / 16384, 65504.0f};
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(fp16_to_float(load<std::uint16_t>(f.data(f16), i)), f16_expected[i]);

  const TensorInfo& f32 = f.at("f32");
  EXPECT_EQ(f32.shape, (std::vector<std::int64_t>{2, 2}));
  const float f32_expected[] = {1.5f, -2.25f, 1e-3f, 3.4e38f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(load<float>(f.data(f32), i), f32_expected[i]);

  const std::int8_t i8_expected[] = {-128, -1, 0, 1, 127};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(load<std::int8_t>(f.data(f.at("i8")), i), i8_expected[i]);
  const std::uint8_t u8_expected[] = {0, 128, 255};
  for (int i = 0; i < 3; ++i) EXPECT_EQ(f.data(f.at("u8"))[i], u8_expected[i]);
  EXPECT_EQ(load<std::int32_t>(f.data(f.at("i32")), 0), std::numeric_limits<std::int32_t>::min());
  EXPECT_EQ(load<std::int32_t>(f.data(f.at("i32")), 1), std::numeric_limits<std::int32_t>::max());
  EXPECT_EQ(load<std::int64_t>(f.data(f.at("i64")), 0), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(load<std::int64_t>(f.data(f.at("i64")), 1), std::numeric_limits<std::int64_t>::max());

  const TensorInfo& f8 = f.at("f8");
  EXPECT_EQ(f8.dtype, DType::F8_E4M3);
  const float f8_expected[] = {0.0f, 1.0f, -1.0f, 448.0f};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(e4m3_to_float(f.data(f8)[i]), f8_expected[i]);

  EXPECT_EQ(f.at("empty").shape, (std::vector<std::int64_t>{0, 4}));
  EXPECT_EQ(f.at("empty").nbytes(), 0u);
  EXPECT_TRUE(f.at("scalar").shape.empty());
  EXPECT_EQ(f.at("scalar").numel(), 1);
  EXPECT_EQ(load<float>(f.data(f.at("scalar")), 0), 42.0f);
}

TEST(Safetensors, WriterReproducesReferenceFileByteForByte) {
  const SafetensorsFile ref = SafetensorsFile::open(kReferenceFile);
  std::vector<TensorSpec> specs;
  for (const auto& t : ref.tensors()) specs.push_back({t.name, t.dtype, t.shape});
  TempDir tmp;
  const std::string path = tmp.file("copy.safetensors");
  SafetensorsWriter w(path, specs, ref.metadata());
  for (const auto& t : ref.tensors()) w.write(t.name, ref.data(t), t.nbytes());
  w.finish();
  EXPECT_EQ(read_all(path), read_all(kReferenceFile));
}

// ---- writer misuse --------------------------------------------------------------------

TEST(SafetensorsWriter, RejectsBadSpecs) {
  TempDir tmp;
  const std::string path = tmp.file("bad.safetensors");
  EXPECT_THROW(SafetensorsWriter(path, {{"a", DType::F32, {1}}, {"a", DType::F32, {2}}}),
               InvalidArgument);
  EXPECT_THROW(SafetensorsWriter(path, {{"a", DType::F32, {-1}}}), InvalidArgument);
  EXPECT_THROW(SafetensorsWriter(path, {{"a", DType::F32, {std::int64_t{1} << 62, 8}}}),
               InvalidArgument);
  EXPECT_THROW(SafetensorsWriter(path, {{"__metadata__", DType::F32, {1}}}), InvalidArgument);
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(SafetensorsWriter, EnforcesOrderAndSizes) {
  TempDir tmp;
  const std::string path = tmp.file("w.safetensors");
  const std::vector<std::uint8_t> bytes(64, 1);
  SafetensorsWriter w(path, {{"a", DType::F32, {2}}, {"b", DType::I8, {3}}});
  EXPECT_THROW(w.write_chunk(bytes.data(), 1), InvalidArgument);  // no tensor begun
  EXPECT_THROW(w.write("b", bytes.data(), 3), InvalidArgument);   // "a" comes first
  EXPECT_THROW(w.write("a", bytes.data(), 7), InvalidArgument);   // a holds 8 bytes
}

TEST(SafetensorsWriter, RejectsOverlongChunkAndShortTensor) {
  TempDir tmp;
  const std::vector<std::uint8_t> bytes(64, 1);
  {
    SafetensorsWriter w(tmp.file("x.safetensors"), {{"a", DType::F32, {2}}, {"b", DType::I8, {3}}});
    w.begin_tensor("a");
    w.write_chunk(bytes.data(), 5);
    EXPECT_THROW(w.write_chunk(bytes.data(), 4), InvalidArgument);
    EXPECT_THROW(w.begin_tensor("b"), InvalidArgument);  // "a" has 5 of 8 bytes
  }
  {
    SafetensorsWriter w(tmp.file("y.safetensors"), {{"a", DType::F32, {2}}, {"b", DType::I8, {3}}});
    w.write("a", bytes.data(), 8);
    EXPECT_THROW(w.finish(), InvalidArgument);  // "b" missing
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(SafetensorsWriter, NoFileWithoutFinish) {
  TempDir tmp;
  const std::string path = tmp.file("w.safetensors");
  {
    SafetensorsWriter w(path, {{"a", DType::U8, {4}}});
    const std::uint8_t bytes[4] = {1, 2, 3, 4};
    w.write("a", bytes, 4);
    EXPECT_FALSE(fs::exists(path));  // only the temporary exists until finish()
  }
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

// ---- malformed files ------------------------------------------------------------------

struct BadFile {
  const char* name;
  std::string bytes;
  const char* expected;  // a phrase the message must contain
};

std::string header_only(const std::string& header, std::size_t data_bytes = 0) {
  return safetensors_bytes(header, std::string(data_bytes, '\0'));
}

std::vector<BadFile> bad_files() {
  const std::string big_length = [] {
    std::string s(8, '\0');
    s[3] = 0x10;  // 0x10000000 = 268 MB
    return s + "{}";
  }();
  const std::string past_eof = [] {
    std::string s(8, '\0');
    s[0] = 100;
    return s + "{}";
  }();
  return {
      {"empty", "", "truncated file: 0 bytes"},
      {"truncated_length", std::string(5, '\0'), "truncated file: 5 bytes"},
      {"header_past_eof", past_eof, "header length 100 runs past the end of the file"},
      {"header_too_large", big_length, "exceeds the limit"},
      {"invalid_json", header_only("{\"a\": {"), "invalid JSON header"},
      {"trailing_garbage", header_only("{}x"), "invalid JSON header"},
      {"empty_header", header_only(""), "invalid JSON header"},
      {"not_object", header_only("[1, 2]"), "header is not a JSON object"},
      {"entry_not_object", header_only(R"({"a": 3})"), "tensor 'a': entry is not an object"},
      {"missing_dtype", header_only(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4),
       "tensor 'a': missing \"dtype\""},
      {"missing_shape", header_only(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4),
       "tensor 'a': missing \"shape\""},
      {"missing_offsets", header_only(R"({"a": {"dtype": "F32", "shape": [1]}})", 4),
       "tensor 'a': missing \"data_offsets\""},
      {"dtype_not_string",
       header_only(R"({"a": {"dtype": 5, "shape": [1], "data_offsets": [0, 4]}})", 4),
       "\"dtype\" is not a string"},
      {"unknown_dtype",
       header_only(R"({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", 8),
       "unsupported dtype 'F64'"},
      {"shape_not_array",
       header_only(R"({"a": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}})", 16),
       "\"shape\" is not an array"},
      {"negative_dim",
       header_only(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4),
       "negative dimension -1"},
      {"float_dim",
       header_only(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4),
       "non-integer dimension"},
      {"huge_dim",
       header_only(
           R"({"a": {"dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0, 4]}})", 4),
       "is too large"},
      {"shape_overflow",
       header_only(
           R"({"a": {"dtype": "BF16", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}})",
           4),
       "overflows"},
      {"bytes_overflow",
       header_only(
           R"({"a": {"dtype": "I64", "shape": [4611686018427387904], "data_offsets": [0, 4]}})", 4),
       "overflows"},
      {"offsets_arity",
       header_only(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0]}})", 1),
       "\"data_offsets\" must be [begin, end]"},
      {"negative_offset",
       header_only(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [-1, 0]}})", 1),
       "\"data_offsets\" must be [begin, end]"},
      {"begin_after_end",
       header_only(R"({"a": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", 4),
       "have begin > end"},
      {"size_mismatch",
       header_only(R"({"a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 10]}})", 10),
       "BF16 shape [2, 3] needs 12 bytes but data_offsets [0, 10] hold 10"},
      {"out_of_range",
       header_only(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8),
       "tensor 'a': data_offsets [0, 16] run past the end of the data buffer (8 bytes)"},
      {"overlap",
       header_only(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},)"
                   R"( "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                   12),
       "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]"},
      {"hole",
       header_only(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                   R"( "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                   12),
       "leave a hole of 4 bytes after tensor 'a'"},
      {"hole_at_start",
       header_only(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8),
       "hole of 4 bytes at the start"},
      {"trailing_bytes",
       header_only(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 6),
       "2 trailing bytes after the last tensor"},
      {"trailing_no_tensors", header_only("{}", 3), "3 trailing bytes"},
      {"metadata_not_object", header_only(R"({"__metadata__": 7})"),
       "__metadata__ is not an object"},
      {"metadata_not_string", header_only(R"({"__metadata__": {"k": 1}})"),
       "__metadata__ value of 'k' is not a string"},
  };
}

class SafetensorsBadFile : public testing::TestWithParam<BadFile> {};

TEST_P(SafetensorsBadFile, OpenThrowsFormatErrorNamingFileAndDefect) {
  const BadFile& bad = GetParam();
  TempDir tmp;
  const std::string path = tmp.file(std::string(bad.name) + ".safetensors");
  write_bytes(path, bad.bytes);
  try {
    SafetensorsFile::open(path);
    FAIL() << "expected FormatError for " << bad.name;
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path + ": ", 0), 0u) << msg;
    EXPECT_NE(msg.find(bad.expected), std::string::npos) << msg;
  }
}

TEST_P(SafetensorsBadFile, ParseThrowsFormatErrorNamingLabel) {
  const BadFile& bad = GetParam();
  const auto* data = reinterpret_cast<const std::uint8_t*>(bad.bytes.data());
  try {
    SafetensorsFile::parse(data, bad.bytes.size(), "label");
    FAIL() << "expected FormatError for " << bad.name;
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("label: ", 0), 0u) << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, SafetensorsBadFile, testing::ValuesIn(bad_files()),
                         [](const testing::TestParamInfo<BadFile>& info) {
                           return info.param.name;
                         });

TEST(Safetensors, AcceptsZeroSizedTensorsAtTheSameOffset) {
  const std::string bytes =
      header_only(R"({"z1": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},)"
                  R"( "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},)"
                  R"( "z2": {"dtype": "I8", "shape": [3, 0], "data_offsets": [4, 4]}})",
                  4);
  const auto f = SafetensorsFile::parse(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                        bytes.size(), "zero");
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "a");  // sorted by offset
  EXPECT_EQ(f.at("z2").numel(), 0);
}

// A container nested a million levels deep is refused without recursing
// through it (dumping it into the message would overflow the stack).
TEST(Safetensors, DeeplyNestedValueIsFormatErrorNotStackOverflow) {
  const std::size_t depth = 1'000'000;
  const std::string header = R"({"a": {"dtype": "U8", "shape": [)" + std::string(depth, '[') +
                             std::string(depth, ']') + R"(], "data_offsets": [0, 1]}})";
  const std::string bytes = header_only(header, 1);
  try {
    SafetensorsFile::parse(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(),
                           "deep");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()),
              "deep: tensor 'a': \"shape\" has a non-integer dimension an array");
  }
}

TEST(Safetensors, MissingTensorNamesFileAndTensor) {
  try {
    SafetensorsFile::open(kReferenceFile).at("nope");
    FAIL() << "expected FormatError";
  } catch (const FormatError& e) {
    EXPECT_EQ(std::string(e.what()), kReferenceFile + ": no tensor 'nope'");
  }
}

TEST(Safetensors, MissingFileIsIoError) {
  EXPECT_THROW(SafetensorsFile::open("/nonexistent/model.safetensors"), IoError);
}

}  // namespace
}  // namespace slidesparse
