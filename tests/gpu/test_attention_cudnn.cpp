// cuDNN's fused prefill attention (runner/attention_cudnn.hpp) against the float32 reference of a
// ragged causal prefill and against the runner's own kernel (attention_prefill) on the same input.
// Tolerance: max abs error <= 2e-2 (kAttentionTolerance, the own kernel's) against the reference,
// and the same bound between the two kernels (both round P to BF16 for the tensor cores and sum in
// their own order). The rows of qkv past the last token start as NaN: run() must zero them, or a
// tile reaching past the end would poison the last sequence's output.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "attention_test_util.hpp"
#include "gpu_test_util.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/runner/attention_cudnn.hpp"
#include "slidesparse/runner/model_kernels.hpp"

namespace slidesparse {
namespace {

using runner::bf16;
using runner::CudnnPrefillAttention;
using Bits = std::vector<std::uint16_t>;

#define SLIDESPARSE_REQUIRE_CUDNN()                                                \
  do {                                                                             \
    SLIDESPARSE_REQUIRE_GPU();                                                     \
    if (!runner::cudnn_attention_built())                                          \
      GTEST_SKIP() << "cuDNN attention " << runner::cudnn_attention_description(); \
  } while (0)

std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }
bf16* bf(DeviceBuffer<std::uint16_t>& b) { return reinterpret_cast<bf16*>(b.get()); }

template <class T>
DeviceBuffer<T> upload_values(const std::vector<T>& values) {
  DeviceBuffer<T> buffer(values.size());
  buffer.upload(values.data(), values.size());
  return buffer;
}

struct Problem {
  std::int64_t heads, kv_heads, head_dim;
  std::vector<int> lengths;
  std::int64_t width() const { return (heads + 2 * kv_heads) * head_dim; }
};

// One packed batch on the device, laid out as the runner lays it out: qkv and out with
// kTailRows rows of slack (qkv's NaN), and the per-sequence metadata cuDNN reads.
struct Batch {
  Batch(const Problem& p, const Bits& host_qkv)
      : cu(test::cumulative(p.lengths)),
        rows(cu.back()),
        qkv(at((rows + CudnnPrefillAttention::kTailRows) * p.width())),
        out(at((rows + CudnnPrefillAttention::kTailRows) * p.heads * p.head_dim)),
        cu_seqlens(upload_values(cu)),
        lengths(upload_values(p.lengths)),
        qkv_offsets(upload_values(runner::packed_sequence_offsets(cu, p.width()))),
        out_offsets(upload_values(runner::packed_sequence_offsets(cu, p.heads * p.head_dim))) {
    qkv.fill_bytes(0xFF);  // BF16 0xFFFF is a NaN
    qkv.upload(host_qkv.data(), host_qkv.size());
    for (const int l : p.lengths) max_seqlen = std::max<std::int64_t>(max_seqlen, l);
  }
  runner::PackedSequences sequences() const {
    runner::PackedSequences s;
    s.lengths = lengths.get();
    s.qkv_offsets = qkv_offsets.get();
    s.out_offsets = out_offsets.get();
    return s;
  }
  std::int64_t count() const { return static_cast<std::int64_t>(cu.size()) - 1; }
  Bits run_cudnn(CudnnPrefillAttention& attention, const runner::SdpaShape& shape,
                 const Problem& p) {
    out.fill_bytes(0xCD);
    attention.run(bf(out), bf(qkv), rows, sequences(), shape, nullptr);
    Bits got(at(rows * p.heads * p.head_dim));
    out.download(got.data(), got.size());
    return got;
  }
  Bits run_own(const Problem& p) {
    out.fill_bytes(0xCD);
    runner::attention_prefill(bf(out), bf(qkv), cu_seqlens.get(), count(), rows, max_seqlen,
                              p.heads, p.kv_heads, p.head_dim, nullptr);
    Bits got(at(rows * p.heads * p.head_dim));
    out.download(got.data(), got.size());
    return got;
  }

  std::vector<int> cu;
  std::int64_t rows;
  std::int64_t max_seqlen = 0;
  DeviceBuffer<std::uint16_t> qkv, out;
  DeviceBuffer<int> cu_seqlens, lengths;
  DeviceBuffer<std::int64_t> qkv_offsets, out_offsets;
};

std::string name(const Problem& p) {
  std::string lengths;
  for (const int l : p.lengths) lengths += (lengths.empty() ? "" : ",") + std::to_string(l);
  return "heads " + std::to_string(p.heads) + "/" + std::to_string(p.kv_heads) + ", head_dim " +
         std::to_string(p.head_dim) + ", lengths " + lengths;
}

float max_abs_difference(const Bits& a, const Bits& b) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(bf16_to_float(a[i]) - bf16_to_float(b[i])));
  return worst;
}

TEST(CudnnAttention, MatchesTheReferenceAndTheOwnKernelOnRaggedSequences) {
  SLIDESPARSE_REQUIRE_CUDNN();
  const std::vector<Problem> problems = {
      {8, 2, 64, {1, 17, 200, 333}},   // GQA; a length of 1, lengths off the 64-row tiles
      {8, 2, 128, {1, 17, 200, 333}},  //
      {4, 4, 128, {64, 65, 128}},      // MHA; tile-exact lengths
      {4, 4, 64, {100, 1, 63, 7, 250}},
      {28, 4, 128, {300, 1, 77}},  // Qwen2.5-7B's heads
      {8, 1, 64, {1}},             // one token in all
  };
  CudnnPrefillAttention attention;
  for (const Problem& p : problems) {
    const std::vector<int> cu = test::cumulative(p.lengths);
    const Bits host_qkv = test::random_bf16(at(cu.back() * p.width()), -2, 2, 14);
    Batch batch(p, host_qkv);
    const runner::SdpaShape shape =
        runner::sdpa_shape(batch.count(), batch.max_seqlen, p.heads, p.kv_heads, p.head_dim);
    const std::string refusal = attention.prepare(shape);
    ASSERT_EQ(refusal, "") << name(p);
    const Bits cudnn = batch.run_cudnn(attention, shape, p);
    const auto want =
        test::reference_prefill(test::to_floats(host_qkv), cu, p.heads, p.kv_heads, p.head_dim);
    EXPECT_LE(test::max_abs_error(cudnn, want), test::kAttentionTolerance) << name(p);
    // The own kernel on the same rows (run() zeroed qkv's tail; the own kernel never reads it).
    const Bits own = batch.run_own(p);
    EXPECT_LE(max_abs_difference(cudnn, own), test::kAttentionTolerance) << name(p);
  }
}

// A graph is built once per shape bucket and serves every batch of that bucket, whatever its
// lengths: the lengths and offsets are device data.
TEST(CudnnAttention, OneGraphServesEveryBatchOfItsShapeBucket) {
  SLIDESPARSE_REQUIRE_CUDNN();
  CudnnPrefillAttention attention;
  const std::vector<Problem> batches = {{8, 2, 64, {100, 90}}, {8, 2, 64, {70, 128}}};
  const runner::SdpaShape shape = runner::sdpa_shape(2, 128, 8, 2, 64);
  ASSERT_EQ(attention.prepare(shape), "");
  ASSERT_EQ(attention.prepare(shape), "");
  EXPECT_EQ(attention.graphs_built(), 1u);
  for (std::size_t i = 0; i < batches.size(); ++i) {
    const Problem& p = batches[i];
    const std::vector<int> cu = test::cumulative(p.lengths);
    const Bits host_qkv = test::random_bf16(at(cu.back() * p.width()), -2, 2, 30 + i);
    Batch batch(p, host_qkv);
    ASSERT_EQ(runner::sdpa_shape(batch.count(), batch.max_seqlen, p.heads, p.kv_heads, p.head_dim)
                  .max_seqlen,
              shape.max_seqlen);
    const Bits cudnn = batch.run_cudnn(attention, shape, p);
    const auto want =
        test::reference_prefill(test::to_floats(host_qkv), cu, p.heads, p.kv_heads, p.head_dim);
    EXPECT_LE(test::max_abs_error(cudnn, want), test::kAttentionTolerance) << name(p);
  }
  EXPECT_EQ(attention.graphs_built(), 1u);
}

// A shape cuDNN cannot run is refused with cuDNN's reason, remembered, and never run.
TEST(CudnnAttention, RefusesAHeadDimItCannotRunWithAReason) {
  SLIDESPARSE_REQUIRE_CUDNN();
  CudnnPrefillAttention attention;
  const runner::SdpaShape shape = runner::sdpa_shape(1, 16, 4, 4, 12);  // not a multiple of 8
  const std::string refusal = attention.prepare(shape);
  EXPECT_NE(refusal, "");
  EXPECT_EQ(attention.prepare(shape), refusal);
  EXPECT_FALSE(attention.ready(shape));
  EXPECT_EQ(attention.graphs_built(), 0u);
  EXPECT_THROW(attention.run(nullptr, nullptr, 1, {}, shape, nullptr), InvalidArgument);
}

// ---- host-side helpers (no GPU needed) ---------------------------------------------------

TEST(CudnnAttention, ShapesBucketTheLongestSequenceToAPowerOfTwo) {
  EXPECT_EQ(runner::sdpa_shape(3, 1, 8, 2, 64).max_seqlen, 64);
  EXPECT_EQ(runner::sdpa_shape(3, 64, 8, 2, 64).max_seqlen, 64);
  EXPECT_EQ(runner::sdpa_shape(3, 65, 8, 2, 64).max_seqlen, 128);
  EXPECT_EQ(runner::sdpa_shape(16, 1024, 28, 4, 128).max_seqlen, 1024);
  EXPECT_EQ(runner::sdpa_shape(1, 1025, 28, 4, 128).max_seqlen, 2048);
  const runner::SdpaShape s = runner::sdpa_shape(16, 1000, 28, 4, 128);
  EXPECT_EQ(s.sequences, 16);
  EXPECT_EQ(s.heads, 28);
  EXPECT_EQ(s.kv_heads, 4);
  EXPECT_EQ(s.head_dim, 128);
  EXPECT_EQ(s.describe(), "16 sequences up to 1024 tokens, 28/4 heads of 128");
  EXPECT_THROW(runner::sdpa_shape(0, 10, 8, 2, 64), InvalidArgument);
}

TEST(CudnnAttention, PackedOffsetsAreCuSeqlensTimesTheRowWidthIn64Bits) {
  const std::vector<int> cu = {0, 3, 3 + 400000, 3 + 400000 + 1};
  const std::int64_t width = (40 + 2 * 8) * 128;  // Qwen2.5-14B's q|k|v row
  const std::vector<std::int64_t> offsets = runner::packed_sequence_offsets(cu, width);
  ASSERT_EQ(offsets.size(), cu.size());
  for (std::size_t i = 0; i < cu.size(); ++i)
    EXPECT_EQ(offsets[i], static_cast<std::int64_t>(cu[i]) * width) << i;
  EXPECT_GT(offsets.back(), std::int64_t{1} << 31);  // past what int32 offsets could hold
}

}  // namespace
}  // namespace slidesparse
