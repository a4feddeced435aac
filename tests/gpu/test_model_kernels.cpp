// The model runner's kernels (runner/model_kernels.hpp) against the float32 CPU blocks of
// model/reference_blocks.hpp on random BF16 inputs. Tolerances:
//   copies, residual_add, the KV-cache store, argmax: exact;
//   rms_norm, add_rms_norm, RoPE, gated_activation: within 1 BF16 ulp of the reference
//     rounded to BF16 (the GPU sums in another order and uses its own expf/cosf), RoPE
//     also within 1e-6 absolute (its difference of products may cancel);
//   attention (prefill and decode): max abs error <= 2e-2 for outputs of O(1) (P is BF16
//     on the tensor cores, the sums run in another order).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "attention_test_util.hpp"
#include "gpu_test_util.hpp"
#include "slidesparse/cuda/device.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/model/reference_blocks.hpp"
#include "slidesparse/numeric.hpp"
#include "slidesparse/runner/model_kernels.hpp"

namespace slidesparse {
namespace {

using runner::bf16;
using Bits = std::vector<std::uint16_t>;
using test::cumulative;
using test::kAttentionTolerance;
using test::max_abs_error;
using test::random_bf16;
using test::reference_prefill;
using test::to_floats;

std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

DeviceBuffer<std::uint16_t> upload(const Bits& bits) {
  DeviceBuffer<std::uint16_t> buffer(std::max<std::size_t>(bits.size(), 1));
  buffer.upload(bits.data(), bits.size());
  return buffer;
}

template <class T>
DeviceBuffer<T> upload_values(const std::vector<T>& values) {
  DeviceBuffer<T> buffer(std::max<std::size_t>(values.size(), 1));
  buffer.upload(values.data(), values.size());
  return buffer;
}

Bits download(const DeviceBuffer<std::uint16_t>& buffer, std::size_t count) {
  Bits out(count);
  buffer.download(out.data(), count);
  return out;
}

bf16* bf(DeviceBuffer<std::uint16_t>& b) { return reinterpret_cast<bf16*>(b.get()); }
const bf16* cbf(const DeviceBuffer<std::uint16_t>& b) {
  return reinterpret_cast<const bf16*>(b.get());
}

// BF16 bit patterns on one monotonic integer line, so adjacent values differ by 1.
int ordered(std::uint16_t bits) {
  return (bits & 0x8000u) ? -static_cast<int>(bits & 0x7fffu) : static_cast<int>(bits);
}

// Every GPU value within 1 BF16 ulp of the float reference rounded to BF16, or within
// `abs_floor` of it (for results of a cancellation, where float-level differences in
// cos/sin are many ulps of a tiny value).
void expect_within_one_ulp(const Bits& gpu, const std::vector<float>& reference,
                           const std::string& what, float abs_floor = 0.0f) {
  ASSERT_EQ(gpu.size(), reference.size()) << what;
  int reported = 0;
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < gpu.size(); ++i) {
    const std::uint16_t want = float_to_bf16(reference[i]);
    if (std::abs(ordered(gpu[i]) - ordered(want)) > 1 &&
        std::fabs(bf16_to_float(gpu[i]) - reference[i]) > abs_floor) {
      ++mismatches;
      if (reported++ < 5)
        ADD_FAILURE() << what << ": element " << i << " GPU " << bf16_to_float(gpu[i])
                      << ", reference " << reference[i];
    }
  }
  EXPECT_EQ(mismatches, 0u) << what;
}

// ---- row copies ------------------------------------------------------------------------

TEST(ModelKernel, EmbeddingCopiesRowsAndZerosIdsOutsideTheVocabulary) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const std::int64_t hidden : {96, 37}) {  // the 16-byte path and the scalar path
    const std::int64_t vocab = 50;
    const Bits table = random_bf16(at(vocab * hidden), -1, 1, 1);
    const std::vector<int> tokens = {3, 0, 49, -1, 50, 7, 7};
    const std::int64_t m = static_cast<std::int64_t>(tokens.size());
    auto d_table = upload(table);
    auto d_tokens = upload_values(tokens);
    DeviceBuffer<std::uint16_t> d_out(at(m * hidden));
    d_out.fill_bytes(0xCD);
    runner::embedding(bf(d_out), cbf(d_table), d_tokens.get(), m, hidden, vocab, nullptr);
    const Bits out = download(d_out, at(m * hidden));
    for (std::int64_t r = 0; r < m; ++r)
      for (std::int64_t c = 0; c < hidden; ++c) {
        const int token = tokens[at(r)];
        const std::uint16_t want = token < 0 || token >= vocab ? 0 : table[at(token * hidden + c)];
        ASSERT_EQ(out[at(r * hidden + c)], want) << "hidden " << hidden << " row " << r;
      }
  }
}

TEST(ModelKernel, GatherRowsCopiesTheIndexedRows) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const std::int64_t width : {3584, 13}) {
    const std::int64_t rows = 40;
    const Bits src = random_bf16(at(rows * width), -3, 3, 2);
    const std::vector<int> index = {39, 0, 16, 16};
    auto d_src = upload(src);
    auto d_index = upload_values(index);
    DeviceBuffer<std::uint16_t> d_dst(index.size() * at(width));
    runner::gather_rows(bf(d_dst), cbf(d_src), d_index.get(),
                        static_cast<std::int64_t>(index.size()), width, nullptr);
    const Bits dst = download(d_dst, index.size() * at(width));
    for (std::size_t i = 0; i < index.size(); ++i)
      for (std::int64_t c = 0; c < width; ++c)
        ASSERT_EQ(dst[i * at(width) + at(c)], src[at(index[i] * width + c)]) << "row " << i;
  }
}

// ---- norms and elementwise -------------------------------------------------------------

std::vector<float> reference_rms_norm(const std::vector<float>& x, const std::vector<float>& w,
                                      std::int64_t rows, std::int64_t width, float eps) {
  std::vector<float> out(x.size());
  reference::rms_norm(out.data(), x.data(), w.data(), rows, width, eps);
  return out;
}

TEST(ModelKernel, RmsNormWithinOneUlp) {
  SLIDESPARSE_REQUIRE_GPU();
  const float eps = 1e-6f;
  struct Shape {
    std::int64_t rows, width;
  };
  for (const Shape s : {Shape{1, 3584}, Shape{7, 100}, Shape{33, 4096}, Shape{5, 37}}) {
    const std::string what = std::to_string(s.rows) + "x" + std::to_string(s.width);
    const Bits x = random_bf16(at(s.rows * s.width), -4, 4, 3);
    const Bits w = random_bf16(at(s.width), 0.5f, 1.5f, 4);
    const auto want = reference_rms_norm(to_floats(x), to_floats(w), s.rows, s.width, eps);
    auto d_x = upload(x);
    auto d_w = upload(w);
    DeviceBuffer<std::uint16_t> d_out(x.size());
    runner::rms_norm(bf(d_out), cbf(d_x), cbf(d_w), s.rows, s.width, eps, nullptr);
    expect_within_one_ulp(download(d_out, x.size()), want, "rms_norm " + what);
    // In place (out aliases x), as the final norm runs.
    runner::rms_norm(bf(d_x), cbf(d_x), cbf(d_w), s.rows, s.width, eps, nullptr);
    expect_within_one_ulp(download(d_x, x.size()), want, "rms_norm in place " + what);
  }
}

TEST(ModelKernel, AddRmsNormRoundsTheResidualThenNormalizes) {
  SLIDESPARSE_REQUIRE_GPU();
  const float eps = 1e-5f;
  for (const std::int64_t width : {3584, 100, 37}) {
    for (const std::int64_t rows : {1, 9}) {
      const std::string what = std::to_string(rows) + "x" + std::to_string(width);
      const Bits residual = random_bf16(at(rows * width), -4, 4, 5);
      const Bits y = random_bf16(at(rows * width), -4, 4, 6);
      const Bits w = random_bf16(at(width), 0.5f, 1.5f, 7);
      Bits want_residual(residual.size());
      for (std::size_t i = 0; i < residual.size(); ++i)
        want_residual[i] = float_to_bf16(bf16_to_float(residual[i]) + bf16_to_float(y[i]));
      const auto want =
          reference_rms_norm(to_floats(want_residual), to_floats(w), rows, width, eps);
      auto d_residual = upload(residual);
      auto d_y = upload(y);
      auto d_w = upload(w);
      DeviceBuffer<std::uint16_t> d_out(residual.size());
      runner::add_rms_norm(bf(d_residual), cbf(d_y), bf(d_out), cbf(d_w), rows, width, eps,
                           nullptr);
      EXPECT_EQ(download(d_residual, residual.size()), want_residual) << what;
      expect_within_one_ulp(download(d_out, residual.size()), want, "add_rms_norm " + what);
    }
  }
}

TEST(ModelKernel, ResidualAddIsOneRoundedSum) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const std::int64_t count : {1, 8, 1001, 3584 * 3}) {
    const Bits x = random_bf16(at(count), -10, 10, 8);
    const Bits y = random_bf16(at(count), -10, 10, 9);
    std::vector<float> want = to_floats(x);
    const std::vector<float> yf = to_floats(y);
    reference::residual_add(want.data(), yf.data(), count);
    Bits want_bits(want.size());
    for (std::size_t i = 0; i < want.size(); ++i) want_bits[i] = float_to_bf16(want[i]);
    auto d_x = upload(x);
    auto d_y = upload(y);
    runner::residual_add(bf(d_x), cbf(d_y), count, nullptr);
    EXPECT_EQ(download(d_x, at(count)), want_bits) << "count " << count;
  }
}

TEST(ModelKernel, GatedActivationWithinOneUlp) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const Activation act : {Activation::Silu, Activation::Relu2}) {
    for (const std::int64_t intermediate : {18944, 40}) {
      for (const std::int64_t rows : {1, 3}) {
        const std::string what = std::string(activation_name(act)) + " " + std::to_string(rows) +
                                 "x" + std::to_string(intermediate);
        const Bits gate_up = random_bf16(at(rows * 2 * intermediate), -6, 6, 10);
        const std::vector<float> all = to_floats(gate_up);
        std::vector<float> want(at(rows * intermediate));
        for (std::int64_t r = 0; r < rows; ++r) {
          std::vector<float> gate(all.begin() + r * 2 * intermediate,
                                  all.begin() + r * 2 * intermediate + intermediate);
          const std::vector<float> up(all.begin() + r * 2 * intermediate + intermediate,
                                      all.begin() + (r + 1) * 2 * intermediate);
          reference::gated_activation(gate.data(), up.data(), intermediate, act);
          std::copy(gate.begin(), gate.end(), want.begin() + r * intermediate);
        }
        auto d_gate_up = upload(gate_up);
        DeviceBuffer<std::uint16_t> d_out(want.size());
        runner::gated_activation(bf(d_out), cbf(d_gate_up), rows, intermediate, act, nullptr);
        expect_within_one_ulp(download(d_out, want.size()), want, what);
      }
    }
  }
}

TEST(ModelKernel, ArgmaxTakesTheLowestIndexAmongTies) {
  SLIDESPARSE_REQUIRE_GPU();
  for (const std::int64_t vocab : {151936, 7}) {
    const std::int64_t rows = 5;
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> dist(-5, 5);
    std::vector<float> logits(at(rows * vocab));
    for (auto& v : logits) v = dist(rng);
    float* row1 = logits.data() + vocab;  // a tie far apart: the lower index wins
    row1[vocab - 1] = 100.0f;
    row1[vocab / 2] = 100.0f;
    float* row2 = logits.data() + 2 * vocab;  // all equal: index 0
    std::fill(row2, row2 + vocab, 1.5f);
    float* row3 = logits.data() + 3 * vocab;  // a tie of neighbours
    row3[vocab - 2] = 50.0f;
    row3[vocab - 1] = 50.0f;
    float* row4 = logits.data() + 4 * vocab;  // all -inf: index 0, as std::max_element
    std::fill(row4, row4 + vocab, -INFINITY);
    auto d_logits = upload_values(logits);
    DeviceBuffer<int> d_out(at(rows));
    for (const std::int64_t m : {std::int64_t{1}, rows}) {
      d_out.fill_bytes(0xCD);
      runner::argmax_rows(d_out.get(), d_logits.get(), m, vocab, nullptr);
      std::vector<int> out(at(m));
      d_out.download(out.data(), at(m));
      for (std::int64_t r = 0; r < m; ++r)
        EXPECT_EQ(out[at(r)], reference::argmax(logits.data() + r * vocab, vocab))
            << "vocab " << vocab << " row " << r << " of " << m;
    }
  }
}

// ---- RoPE, the KV cache and attention ---------------------------------------------------

std::vector<float> inv_freq_for(std::int64_t head_dim, double theta = 10000.0) {
  std::vector<float> inv(at(head_dim / 2));
  for (std::int64_t i = 0; i < head_dim / 2; ++i)
    inv[at(i)] = static_cast<float>(
        1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(head_dim)));
  return inv;
}

// A KV cache [max_sequences, max_length, kv_heads, head_dim] of random values (so a read
// past a sequence's length changes the result).
struct TestCache {
  TestCache(std::int64_t sequences, std::int64_t length, std::int64_t kv_heads,
            std::int64_t head_dim, std::uint32_t seed)
      : elements(at(sequences * length * kv_heads * head_dim)),
        host_k(random_bf16(elements, -1, 1, seed)),
        host_v(random_bf16(elements, -1, 1, seed + 1)),
        k(upload(host_k)),
        v(upload(host_v)) {
    view.k = bf(k);
    view.v = bf(v);
    view.max_sequences = sequences;
    view.max_length = length;
    view.kv_heads = kv_heads;
    view.head_dim = head_dim;
  }
  std::size_t elements;
  Bits host_k, host_v;
  DeviceBuffer<std::uint16_t> k, v;
  runner::KvCacheView view;
};

TEST(ModelKernel, RopeStoreKvRotatesQkAndFillsTheCache) {
  SLIDESPARSE_REQUIRE_GPU();
  const std::int64_t heads = 8, kv_heads = 2;
  for (const std::int64_t head_dim : {64, 128}) {
    const std::int64_t width = (heads + 2 * kv_heads) * head_dim;
    const std::int64_t kv_width = kv_heads * head_dim;
    // Two sequences interleaved, positions up to 5000 (large angles).
    const std::vector<int> sequence = {0, 1, 0, 1, 2};
    const std::vector<int> position = {0, 3, 1, 4999, 17};
    const std::int64_t rows = static_cast<std::int64_t>(sequence.size());
    const Bits qkv = random_bf16(at(rows * width), -2, 2, 12);
    const std::vector<float> inv_freq = inv_freq_for(head_dim);
    TestCache cache(3, 5000, kv_heads, head_dim, 13);

    auto d_qkv = upload(qkv);
    auto d_sequence = upload_values(sequence);
    auto d_position = upload_values(position);
    auto d_inv_freq = upload_values(inv_freq);
    runner::rope_store_kv(bf(d_qkv), rows, d_sequence.get(), d_position.get(), d_inv_freq.get(),
                          heads, cache.view, nullptr);
    const Bits got = download(d_qkv, qkv.size());
    const Bits got_k = download(cache.k, cache.elements);
    const Bits got_v = download(cache.v, cache.elements);

    std::vector<float> want = to_floats(qkv);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t h = 0; h < heads + kv_heads; ++h)
        reference::rope(want.data() + r * width + h * head_dim, head_dim, position[at(r)],
                        inv_freq);
    // v is not rotated
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t e = (heads + kv_heads) * head_dim; e < width; ++e)
        ASSERT_EQ(got[at(r * width + e)], qkv[at(r * width + e)]);
    expect_within_one_ulp(got, want, "rope head_dim " + std::to_string(head_dim), 1e-6f);

    Bits want_k = cache.host_k, want_v = cache.host_v;
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t slot = (sequence[at(r)] * 5000 + position[at(r)]) * kv_width;
      for (std::int64_t e = 0; e < kv_width; ++e) {
        want_k[at(slot + e)] = got[at(r * width + heads * head_dim + e)];
        want_v[at(slot + e)] = qkv[at(r * width + (heads + kv_heads) * head_dim + e)];
      }
    }
    EXPECT_EQ(got_k, want_k) << "cache k, head_dim " << head_dim;
    EXPECT_EQ(got_v, want_v) << "cache v, head_dim " << head_dim;
  }
}

Bits run_prefill(const Bits& qkv, const std::vector<int>& cu, std::int64_t heads,
                 std::int64_t kv_heads, std::int64_t head_dim) {
  const std::int64_t rows = cu.back();
  std::int64_t max_seqlen = 0;
  for (std::size_t s = 0; s + 1 < cu.size(); ++s)
    max_seqlen = std::max<std::int64_t>(max_seqlen, cu[s + 1] - cu[s]);
  auto d_qkv = upload(qkv);
  auto d_cu = upload_values(cu);
  DeviceBuffer<std::uint16_t> d_out(at(rows * heads * head_dim));
  d_out.fill_bytes(0xCD);
  runner::attention_prefill(bf(d_out), cbf(d_qkv), d_cu.get(),
                            static_cast<std::int64_t>(cu.size()) - 1, rows, max_seqlen, heads,
                            kv_heads, head_dim, nullptr);
  return download(d_out, at(rows * heads * head_dim));
}

TEST(Attention, PrefillMatchesTheReferenceOnRaggedSequences) {
  SLIDESPARSE_REQUIRE_GPU();
  struct Case {
    std::int64_t heads, kv_heads, head_dim;
    std::vector<int> lengths;
  };
  const std::vector<Case> cases = {
      {8, 2, 64, {1, 17, 200, 333}},
      {8, 2, 128, {1, 17, 200, 333}},
      {4, 4, 128, {64, 65, 128}},  // no GQA; tile-exact lengths
      {8, 1, 64, {1}},             // M = 1
  };
  for (const Case& c : cases) {
    const std::vector<int> cu = cumulative(c.lengths);
    const std::int64_t width = (c.heads + 2 * c.kv_heads) * c.head_dim;
    const Bits qkv = random_bf16(at(cu.back() * width), -2, 2, 14);
    const Bits got = run_prefill(qkv, cu, c.heads, c.kv_heads, c.head_dim);
    const auto want = reference_prefill(to_floats(qkv), cu, c.heads, c.kv_heads, c.head_dim);
    EXPECT_LE(max_abs_error(got, want), kAttentionTolerance)
        << "heads " << c.heads << "/" << c.kv_heads << ", head_dim " << c.head_dim;
  }
}

TEST(Attention, PrefillRejectsAnUnsupportedHeadDim) {
  SLIDESPARSE_REQUIRE_GPU();
  EXPECT_THROW(runner::attention_prefill(nullptr, nullptr, nullptr, 1, 1, 1, 8, 2, 96, nullptr),
               InvalidArgument);
  EXPECT_THROW(runner::attention_prefill(nullptr, nullptr, nullptr, 1, 1, 1, 8, 3, 64, nullptr),
               InvalidArgument);
}

TEST(Attention, DecodeMatchesTheReferenceForLengthsUpTo1000) {
  SLIDESPARSE_REQUIRE_GPU();
  const std::int64_t heads = 8, kv_heads = 2, max_length = 1024, max_sequences = 9;
  const std::vector<int> lengths = {1, 2, 63, 64, 65, 257, 1000, 999};
  const std::int64_t sequences = static_cast<std::int64_t>(lengths.size());
  for (const std::int64_t head_dim : {64, 128}) {
    const std::int64_t width = (heads + 2 * kv_heads) * head_dim;
    const std::int64_t kv_width = kv_heads * head_dim;
    TestCache cache(max_sequences, max_length, kv_heads, head_dim, 15);
    const Bits qkv = random_bf16(at(sequences * width), -2, 2, 16);
    auto d_qkv = upload(qkv);
    auto d_lengths = upload_values(lengths);
    DeviceBuffer<std::uint16_t> d_out(at(sequences * heads * head_dim));
    d_out.fill_bytes(0xCD);
    runner::attention_decode(bf(d_out), cbf(d_qkv), d_lengths.get(), sequences, heads, cache.view,
                             nullptr);
    const Bits got = download(d_out, at(sequences * heads * head_dim));

    const std::vector<float> q = to_floats(qkv);
    const std::vector<float> k = to_floats(cache.host_k), v = to_floats(cache.host_v);
    std::vector<float> want(got.size());
    for (std::int64_t s = 0; s < sequences; ++s) {
      const std::int64_t slot = s * max_length * kv_width;
      reference::attention(want.data() + s * heads * head_dim, q.data() + s * width,
                           k.data() + slot, v.data() + slot, lengths[at(s)], heads, kv_heads,
                           head_dim);
    }
    EXPECT_LE(max_abs_error(got, want), kAttentionTolerance) << "head_dim " << head_dim;
  }
}

// The decode of a prompt's last token, on the cache rope_store_kv filled, equals the last
// row of the prompt's prefill (and both equal the reference).
TEST(Attention, DecodeOfTheLastTokenMatchesPrefill) {
  SLIDESPARSE_REQUIRE_GPU();
  const std::int64_t heads = 8, kv_heads = 2, length = 300, max_length = 512;
  for (const std::int64_t head_dim : {64, 128}) {
    const std::int64_t width = (heads + 2 * kv_heads) * head_dim;
    const std::int64_t out_width = heads * head_dim;
    const Bits raw = random_bf16(at(length * width), -2, 2, 17);
    TestCache cache(2, max_length, kv_heads, head_dim, 18);
    std::vector<int> sequence(at(length), 1), position(at(length));
    for (std::int64_t i = 0; i < length; ++i) position[at(i)] = static_cast<int>(i);
    auto d_qkv = upload(raw);
    auto d_sequence = upload_values(sequence);
    auto d_position = upload_values(position);
    auto d_inv_freq = upload_values(inv_freq_for(head_dim));
    runner::rope_store_kv(bf(d_qkv), length, d_sequence.get(), d_position.get(), d_inv_freq.get(),
                          heads, cache.view, nullptr);
    const Bits roped = download(d_qkv, raw.size());

    const std::vector<int> cu = {0, static_cast<int>(length)};
    const Bits prefill = run_prefill(roped, cu, heads, kv_heads, head_dim);

    // Decode reads sequence 1 of the cache; its query is the last roped row, given as row 1.
    Bits decode_qkv(at(2 * width), 0);
    std::copy(roped.end() - width, roped.end(), decode_qkv.begin() + width);
    auto d_decode_qkv = upload(decode_qkv);
    auto d_lengths = upload_values(std::vector<int>{0, static_cast<int>(length)});
    DeviceBuffer<std::uint16_t> d_out(at(2 * out_width));
    runner::attention_decode(bf(d_out), cbf(d_decode_qkv), d_lengths.get(), 2, heads, cache.view,
                             nullptr);
    const Bits decode = download(d_out, at(2 * out_width));

    float worst = 0.0f;
    for (std::int64_t e = 0; e < out_width; ++e)
      worst = std::max(worst, std::fabs(bf16_to_float(decode[at(out_width + e)]) -
                                        bf16_to_float(prefill[at((length - 1) * out_width + e)])));
    EXPECT_LE(worst, kAttentionTolerance) << "head_dim " << head_dim;
    for (std::int64_t e = 0; e < out_width; ++e)  // length 0: zeros
      EXPECT_EQ(decode[at(e)], 0u) << "element " << e;

    const auto want = reference_prefill(to_floats(roped), cu, heads, kv_heads, head_dim);
    const std::vector<float> want_last(want.end() - out_width, want.end());
    const Bits decode_last(decode.begin() + out_width, decode.end());
    EXPECT_LE(max_abs_error(decode_last, want_last), kAttentionTolerance);
  }
}

// ---- large ---------------------------------------------------------------------------

// 65536 rows of 3584 (Qwen2.5-7B's hidden size at M = 65536): offsets far past a block's
// reach; every row is checked against the reference, one row at a time.
TEST(ModelKernelLarge, NormsAt65536RowsOf3584) {
  SLIDESPARSE_REQUIRE_GPU();
  const std::int64_t rows = 65536, width = 3584;
  const float eps = 1e-6f;
  const std::size_t count = at(rows * width);
  const Bits residual = random_bf16(count, -4, 4, 19);
  const Bits y = random_bf16(count, -4, 4, 20);
  const Bits w = random_bf16(at(width), 0.5f, 1.5f, 21);
  const std::vector<float> wf = to_floats(w);
  auto d_residual = upload(residual);
  auto d_y = upload(y);
  auto d_w = upload(w);
  DeviceBuffer<std::uint16_t> d_norm(count), d_fused(count);
  runner::rms_norm(bf(d_norm), cbf(d_residual), cbf(d_w), rows, width, eps, nullptr);
  runner::add_rms_norm(bf(d_residual), cbf(d_y), bf(d_fused), cbf(d_w), rows, width, eps, nullptr);
  const Bits norm = download(d_norm, count);
  const Bits fused = download(d_fused, count);
  const Bits summed = download(d_residual, count);

  std::size_t mismatches = 0;
  std::vector<float> row(at(width)), want(at(width));
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::size_t base = at(r * width);
    for (std::int64_t c = 0; c < width; ++c) row[at(c)] = bf16_to_float(residual[base + at(c)]);
    reference::rms_norm(want.data(), row.data(), wf.data(), 1, width, eps);
    for (std::int64_t c = 0; c < width; ++c)
      if (std::abs(ordered(norm[base + at(c)]) - ordered(float_to_bf16(want[at(c)]))) > 1)
        ++mismatches;
    for (std::int64_t c = 0; c < width; ++c) {
      const std::uint16_t s = float_to_bf16(row[at(c)] + bf16_to_float(y[base + at(c)]));
      if (summed[base + at(c)] != s) ++mismatches;
      row[at(c)] = bf16_to_float(s);
    }
    reference::rms_norm(want.data(), row.data(), wf.data(), 1, width, eps);
    for (std::int64_t c = 0; c < width; ++c)
      if (std::abs(ordered(fused[base + at(c)]) - ordered(float_to_bf16(want[at(c)]))) > 1)
        ++mismatches;
  }
  EXPECT_EQ(mismatches, 0u);
}

}  // namespace
}  // namespace slidesparse
