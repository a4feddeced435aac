// The GPU model runner against the float32 CPU reference forward, on tiny synthetic models of
// each family (head_dim 64: the attention kernels take 64 and 128).
//   BF16 dense: logits within relative L2 3e-2 (BF16 activations vs float32 everywhere).
//   INT8 sparse 2_8: against the reference with the same packed INT8 linears
//   (packed_reference_linears, Sparse), relative L2 5e-2: activations are quantized from BF16
//   rows on the GPU, from float32 rows on the CPU, so a few codes differ by one.
//   fuse_quantize on and off (INT8 sparse 2_8, FP8 dense): the same logits, bit for bit.
//   prefill attention cudnn and own (BF16 dense): each within relative L2 3e-2 of the float
//   reference, and of each other (the two attentions round differently, BF16 carries it on).
// Greedy tokens must match, except at near-ties of the reference (gap under 1% of the logit
// range), which the test reports.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "../io_fixtures.hpp"
#include "cutlass_test_util.hpp"
#include "gpu_test_util.hpp"
#include "slidesparse/checkpoint.hpp"
#include "slidesparse/converter.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/gemm/gemm.hpp"
#include "slidesparse/model/reference_forward.hpp"
#include "slidesparse/runner/attention_cudnn.hpp"
#include "slidesparse/runner/gpu_model.hpp"
#include "slidesparse/synthetic.hpp"

namespace slidesparse {
namespace {

using runner::GpuBackend;
using runner::GpuModel;
using runner::GpuModelOptions;
using runner::PrefillAttention;

ModelPreset tiny_preset(Architecture architecture) {
  ModelPreset p;
  p.name = std::string("tiny-") + architecture_model_type(architecture);
  p.architecture = architecture;
  p.hidden = 256;
  p.intermediate = 512;
  p.layers = 2;
  p.heads = 4;
  p.kv_heads = 2;
  p.head_dim = 64;
  p.vocab = 512;
  p.max_position = 256;
  p.attention_bias = architecture == Architecture::Qwen2;
  if (architecture == Architecture::BitNet) {
    p.hidden_act = "relu2";
    p.rope_theta = 500000.0;
    p.rms_norm_eps = 1e-5;
  }
  return p;
}

double relative_l2(const float* got, const float* want, std::int64_t count) {
  double diff = 0, norm = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    diff += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    norm += double(want[i]) * want[i];
  }
  return std::sqrt(diff / std::max(norm, 1e-30));
}

int argmax(const float* v, std::int64_t n) { return int(std::max_element(v, v + n) - v); }

// Every row's logits within `tolerance`; each GPU token the reference's argmax or a near-tie.
void expect_rows_match(const std::vector<float>& got, const std::vector<float>& want,
                       const std::vector<int>& gpu_tokens, std::int64_t vocab, double tolerance,
                       const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  const std::int64_t rows = std::int64_t(want.size()) / vocab;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* g = got.data() + r * vocab;
    const float* w = want.data() + r * vocab;
    EXPECT_LE(relative_l2(g, w, vocab), tolerance) << where << ", row " << r;
    const int best = argmax(w, vocab);
    const int token = gpu_tokens[std::size_t(r)];
    EXPECT_EQ(token, argmax(g, vocab)) << where << ": sampled token is not the logits' argmax";
    if (token != best) {
      const auto [lo, hi] = std::minmax_element(w, w + vocab);
      const float gap = w[best] - w[token];
      EXPECT_LE(gap, 0.01f * (*hi - *lo))
          << where << ", row " << r << ": GPU chose " << token << ", reference " << best;
      std::printf("near-tie at %s row %lld: GPU %d, reference %d, gap %g\n", where.c_str(),
                  static_cast<long long>(r), token, best, static_cast<double>(gap));
    }
  }
}

class GpuModelTest : public ::testing::TestWithParam<Architecture> {
 protected:
  void SetUp() override {
    SLIDESPARSE_REQUIRE_GPU();
    dir_ = tmp_.path() + "/model";
    make_synthetic_checkpoint(tiny_preset(GetParam()), 2, dir_, 7, false);
  }
  GpuModelOptions options(Precision precision, GpuBackend backend, const Pattern& pattern) const {
    GpuModelOptions o;
    o.precision = precision;
    o.backend = backend;
    o.pattern = pattern;
    o.max_tokens = 64;
    o.max_sequences = 4;
    o.max_context = 48;
    o.quiet = true;
    return o;
  }
  // Ragged prompts, then 16 decode steps fed the GPU's tokens on both sides.
  void compare(GpuModel& gpu, ReferenceModel& ref, double tolerance) {
    const std::vector<std::vector<int>> prompts = {
        {1, 2, 3, 4, 5}, {100, 7, 300, 9, 11, 13, 17, 500, 19}, {42, 43, 44}};
    const std::int64_t vocab = ref.config().vocab;
    std::vector<int> next = gpu.prefill(prompts);
    expect_rows_match(gpu.last_logits(), ref.prefill(prompts), next, vocab, tolerance, "prefill");
    for (int step = 0; step < 16; ++step) {
      const std::vector<int> fed = next;
      next = gpu.decode_step(fed);
      expect_rows_match(gpu.last_logits(), ref.decode_step(fed), next, vocab, tolerance,
                        "decode step " + std::to_string(step));
    }
    for (std::int64_t s = 0; s < 3; ++s) EXPECT_EQ(gpu.sequence_length(s), ref.sequence_length(s));
  }

  test::TempDir tmp_;
  std::string dir_;
};

TEST_P(GpuModelTest, Bf16DenseMatchesFloatReference) {
  GpuModel gpu(dir_, options(Precision::BF16, GpuBackend::Dense, Pattern::infinite()));
  const Checkpoint checkpoint = Checkpoint::open(dir_);
  const ModelConfig config = model_config(checkpoint);
  ReferenceModel ref(config, HostModelWeights::load(checkpoint, config));
  compare(gpu, ref, 3e-2);
}

TEST_P(GpuModelTest, Int8Sparse2of8MatchesPackedReference) {
  const Pattern pattern = Pattern::parse("2_8");
  GpuModel gpu(dir_, options(Precision::INT8, GpuBackend::Sparse, pattern));
  const Checkpoint checkpoint = Checkpoint::open(dir_);
  const ModelConfig config = model_config(checkpoint);
  HostModelWeights weights = HostModelWeights::load(checkpoint, config);
  LinearFn linears = packed_reference_linears(weights, pattern, Precision::INT8,
                                              PruneMode::Magnitude, ReferenceLinearPath::Sparse);
  ReferenceModel ref(config, std::move(weights), std::move(linears));
  compare(gpu, ref, 5e-2);
}

TEST_P(GpuModelTest, GreedyGenerationEqualsStepByStep) {
  GpuModel gpu(dir_, options(Precision::BF16, GpuBackend::Dense, Pattern::infinite()));
  const std::vector<std::vector<int>> prompts = {{5, 6, 7}, {8}};
  const auto generated = gpu.generate_greedy(prompts, 8);
  std::vector<int> next = gpu.prefill(prompts);  // replays the captured graphs
  for (int step = 0; step < 8; ++step) {
    for (std::size_t s = 0; s < prompts.size(); ++s)
      EXPECT_EQ(generated[s][std::size_t(step)], next[s]) << "step " << step;
    if (step + 1 < 8) next = gpu.decode_step(next);
  }
}

// Equal logits, bit for bit: reports the first difference rather than both vectors.
void expect_same_logits(const std::vector<float>& got, const std::vector<float>& want,
                        const std::string& where) {
  ASSERT_EQ(got.size(), want.size()) << where;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      ADD_FAILURE() << where << ": logit " << i << " is " << got[i] << " fused, " << want[i]
                    << " unfused";
      return;
    }
  }
}

// Prefill of three prompts, then three greedy decode steps: each model in `got` gives the
// tokens and the logits of `want` bit for bit (the names label the failures).
void expect_same_generation(GpuModel& want,
                            const std::vector<std::pair<GpuModel*, std::string>>& got) {
  const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5}, {100, 7, 300, 9, 11}, {42}};
  std::vector<int> next = want.prefill(prompts);
  for (const auto& [model, name] : got) {
    EXPECT_EQ(model->prefill(prompts), next) << name << " prefill";
    expect_same_logits(model->last_logits(), want.last_logits(), name + " prefill");
  }
  for (int step = 0; step < 3 && !::testing::Test::HasFailure(); ++step) {
    const std::vector<int> fed = next;
    next = want.decode_step(fed);
    const std::string at = " decode step " + std::to_string(step);
    for (const auto& [model, name] : got) {
      EXPECT_EQ(model->decode_step(fed), next) << name << at;
      expect_same_logits(model->last_logits(), want.last_logits(), name + at);
    }
  }
}

// The norms and the activation fused into the quantization of the linear layers they feed
// (fuse_quantize, the default) change no bit: the logits of the unfused kernels, through
// prefill and the decode graphs.
TEST_P(GpuModelTest, FusedQuantizeEqualsUnfused) {
  struct Setup {
    Precision precision;
    GpuBackend backend;
    Pattern pattern;
  };
  for (const Setup& setup : {Setup{Precision::INT8, GpuBackend::Sparse, Pattern::parse("2_8")},
                             Setup{Precision::FP8, GpuBackend::Dense, Pattern::infinite()}}) {
    const std::string name = std::string(precision_name(setup.precision)) + " " +
                             runner::gpu_backend_name(setup.backend);
    GpuModelOptions o = options(setup.precision, setup.backend, setup.pattern);
    ASSERT_TRUE(o.fuse_quantize) << "fused is the default";
    GpuModel fused(dir_, o);
    o.fuse_quantize = false;
    GpuModel unfused(dir_, o);
    const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5}, {100, 7, 300, 9, 11}, {42}};
    std::vector<int> next = unfused.prefill(prompts);
    EXPECT_EQ(fused.prefill(prompts), next) << name;
    expect_same_logits(fused.last_logits(), unfused.last_logits(), name + " prefill");
    for (int step = 0; step < 6 && !HasFailure(); ++step) {
      const std::vector<int> fed = next;
      next = unfused.decode_step(fed);
      EXPECT_EQ(fused.decode_step(fed), next) << name << " decode step " << step;
      expect_same_logits(fused.last_logits(), unfused.last_logits(),
                         name + " decode step " + std::to_string(step));
    }
  }
}

// Searching algorithms (search_untuned) changes which kernels run, never the INT8 results: the
// int32 sums of these tiny layers stay far below 2^24, where every algorithm is exact.
TEST_P(GpuModelTest, SearchedAlgorithmsGiveTheSameInt8Logits) {
  GpuModelOptions o = options(Precision::INT8, GpuBackend::Sparse, Pattern::parse("2_8"));
  GpuModel defaults(dir_, o);
  o.search_untuned = true;
  GpuModel searched(dir_, o);
  expect_same_generation(defaults, {{&searched, "searched"}});
}

// The dense fallback (both paths searched per M, dense where it measured faster) changes which
// path runs, never the INT8 results: the dense and the slid sparse path compute the same
// quantized pruned product (DESIGN.md §5). It keeps the dense weights, and says how much.
TEST_P(GpuModelTest, DenseFallbackGivesTheSameInt8Logits) {
  GpuModelOptions o = options(Precision::INT8, GpuBackend::Sparse, Pattern::parse("2_8"));
  GpuModel sparse(dir_, o);
  EXPECT_EQ(sparse.dense_fallback_bytes(), 0u);
  o.search_untuned = true;
  o.dense_fallback = true;
  GpuModel fallback(dir_, o);
  EXPECT_GT(fallback.dense_fallback_bytes(), 0u);
  // Beyond the dense weights, only the shared scratch grows (the dense path's quantized input).
  EXPECT_EQ(fallback.device_bytes() - fallback.linear_scratch_bytes(),
            sparse.device_bytes() - sparse.linear_scratch_bytes() +
                fallback.dense_fallback_bytes());
  expect_same_generation(sparse, {{&fallback, "fallback"}});
  o.backend = GpuBackend::Dense;
  o.pattern = Pattern::infinite();
  EXPECT_THROW(GpuModel(dir_, o), InvalidArgument);  // dense_fallback goes with sparse
}

// The sparse backend on our CUTLASS kernel (dequantization in its epilogue) gives the INT8
// logits of the cuSPARSELt one bit for bit: both compute the reference's float operations. So
// does its lifting variant, fed un-lifted rows by the fused norms and activations.
TEST_P(GpuModelTest, CutlassSparseGemmGivesTheSameInt8Logits) {
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  GpuModelOptions o = options(Precision::INT8, GpuBackend::Sparse, Pattern::parse("2_8"));
  GpuModel cusparselt(dir_, o);
  o.sparse_gemm = GemmBackendKind::CutlassSparse;
  GpuModel cutlass(dir_, o);
  o.sparse_gemm = GemmBackendKind::CutlassSparseLift;
  GpuModel cutlass_lift(dir_, o);
  expect_same_generation(cusparselt, {{&cutlass, "cutlass"}, {&cutlass_lift, "cutlass_lift"}});
}

// Every sparse GEMM per linear (sparse_gemm_auto: cuSPARSELt and CUTLASS, each searched once per
// shape and new M, each linear running the faster) gives the INT8 logits of the cuSPARSELt-only
// model bit for bit, also with the dense fallback as a third choice: all compute the same
// quantized pruned product. The second copy of the sparse weights is counted and said.
TEST_P(GpuModelTest, SparseGemmAutoGivesTheSameInt8Logits) {
  GemmContext ctx;
  REQUIRE_CUTLASS(ctx);
  GpuModelOptions o = options(Precision::INT8, GpuBackend::Sparse, Pattern::parse("2_8"));
  GpuModel cusparselt(dir_, o);
  EXPECT_EQ(cusparselt.sparse_auto_bytes(), 0u);
  o.search_untuned = true;
  o.sparse_gemm_auto = true;
  GpuModel both(dir_, o);
  EXPECT_EQ(both.sparse_gemm_note(), "");
  EXPECT_GT(both.sparse_auto_bytes(), 0u);
  EXPECT_EQ(both.device_bytes() - both.linear_scratch_bytes(),
            cusparselt.device_bytes() - cusparselt.linear_scratch_bytes() +
                both.sparse_auto_bytes());
  o.dense_fallback = true;
  GpuModel three(dir_, o);
  EXPECT_EQ(three.device_bytes() - three.linear_scratch_bytes(),
            cusparselt.device_bytes() - cusparselt.linear_scratch_bytes() +
                three.sparse_auto_bytes() + three.dense_fallback_bytes());
  expect_same_generation(cusparselt, {{&both, "sparse auto"}, {&three, "sparse auto+fallback"}});
  o.backend = GpuBackend::Dense;
  o.pattern = Pattern::infinite();
  o.dense_fallback = false;
  EXPECT_THROW(GpuModel(dir_, o), InvalidArgument);  // sparse_gemm_auto goes with sparse
}

// Where CUTLASS cannot run (here BF16 weights), sparse_gemm_auto is the cuSPARSELt model: no
// second copy, and the reason said once.
TEST_P(GpuModelTest, SparseGemmAutoWithoutCutlassRunsCusparselt) {
  GpuModelOptions o = options(Precision::BF16, GpuBackend::Sparse, Pattern::parse("2_8"));
  GpuModel cusparselt(dir_, o);
  o.sparse_gemm_auto = true;
  GpuModel alone(dir_, o);
  EXPECT_NE(alone.sparse_gemm_note(), "");
  EXPECT_EQ(alone.sparse_auto_bytes(), 0u);
  EXPECT_EQ(alone.device_bytes(), cusparselt.device_bytes());
  const std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5}, {42}};
  alone.prefill(prompts);
  cusparselt.prefill(prompts);
  // The same kernels on the same data; a tolerance only in case a library reduces in another
  // order from run to run.
  const std::vector<float> got = alone.last_logits(), want = cusparselt.last_logits();
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LE(relative_l2(got.data(), want.data(), std::int64_t(want.size())), 1e-3);
}

// cuDNN's fused prefill attention and the runner's own kernel give the same model within the
// BF16 tolerance: both against the float reference, and against each other, through prefill
// (ragged prompts, one of a single token) and the decode steps after it.
TEST_P(GpuModelTest, CudnnAndOwnPrefillAttentionAgree) {
  if (!runner::cudnn_attention_built())
    GTEST_SKIP() << "cuDNN attention " << runner::cudnn_attention_description();
  GpuModelOptions o = options(Precision::BF16, GpuBackend::Dense, Pattern::infinite());
  o.attention = PrefillAttention::Own;
  GpuModel own(dir_, o);
  o.attention = PrefillAttention::Cudnn;
  GpuModel cudnn(dir_, o);
  const Checkpoint checkpoint = Checkpoint::open(dir_);
  const ModelConfig config = model_config(checkpoint);
  ReferenceModel ref(config, HostModelWeights::load(checkpoint, config));
  const std::int64_t vocab = config.vocab;
  std::vector<std::vector<int>> prompts = {{1, 2, 3, 4, 5}, {42}, std::vector<int>(44, 0)};
  for (std::size_t i = 0; i < prompts[2].size(); ++i) prompts[2][i] = int((i * 37 + 11) % 512);
  const std::vector<int> next_own = own.prefill(prompts);
  const std::vector<int> next_cudnn = cudnn.prefill(prompts);
  EXPECT_EQ(own.prefill_attention(), PrefillAttention::Own);
  EXPECT_EQ(cudnn.prefill_attention(), PrefillAttention::Cudnn)
      << "cuDNN refused this prefill (its reason is on stderr)";
  const std::vector<float> want = ref.prefill(prompts);
  expect_rows_match(own.last_logits(), want, next_own, vocab, 3e-2, "own prefill");
  expect_rows_match(cudnn.last_logits(), want, next_cudnn, vocab, 3e-2, "cudnn prefill");
  expect_rows_match(cudnn.last_logits(), own.last_logits(), next_cudnn, vocab, 3e-2,
                    "cudnn against own prefill");
  // Decode reads the KV cache the prefill stored, whichever attention ran.
  std::vector<int> next = next_cudnn;
  for (int step = 0; step < 4; ++step) {
    const std::vector<int> fed = next;
    next = cudnn.decode_step(fed);
    expect_rows_match(cudnn.last_logits(), ref.decode_step(fed), next, vocab, 3e-2,
                      "cudnn decode step " + std::to_string(step));
  }
}

INSTANTIATE_TEST_SUITE_P(Families, GpuModelTest,
                         ::testing::Values(Architecture::Llama, Architecture::Qwen2,
                                           Architecture::BitNet),
                         [](const auto& info) {
                           return std::string(architecture_name(info.param));
                         });

class GpuModelInputs : public ::testing::Test {
 protected:
  void SetUp() override {
    SLIDESPARSE_REQUIRE_GPU();
    dir_ = tmp_.path() + "/model";
    make_synthetic_checkpoint(tiny_preset(Architecture::Llama), 2, dir_, 3, false);
  }
  test::TempDir tmp_;
  std::string dir_;
};

TEST(PrefillAttentionNames, ParseBothSpellingsAndRejectOthers) {
  EXPECT_EQ(runner::parse_prefill_attention("cudnn"), PrefillAttention::Cudnn);
  EXPECT_EQ(runner::parse_prefill_attention("own"), PrefillAttention::Own);
  EXPECT_STREQ(runner::prefill_attention_name(PrefillAttention::Cudnn), "cudnn");
  EXPECT_STREQ(runner::prefill_attention_name(PrefillAttention::Own), "own");
  EXPECT_THROW(runner::parse_prefill_attention("flash"), InvalidArgument);
  EXPECT_EQ(runner::default_prefill_attention(),
            runner::cudnn_attention_built() ? PrefillAttention::Cudnn : PrefillAttention::Own);
}

template <class F>
void expect_invalid(F&& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no InvalidArgument (expected one mentioning '" << needle << "')";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST_F(GpuModelInputs, BadPromptsThrowNamingPromptAndValue) {
  GpuModelOptions o;
  o.precision = Precision::INT8;
  o.backend = GpuBackend::Sparse;
  o.pattern = Pattern::parse("2_4");
  o.max_tokens = 32;
  o.max_sequences = 2;
  o.max_context = 16;
  o.quiet = true;
  GpuModel gpu(dir_, o);
  expect_invalid([&] { gpu.prefill({}); }, "no prompts");
  expect_invalid([&] { gpu.prefill({{1, 2}, {}}); }, "prompt 1 is empty");
  expect_invalid([&] { gpu.prefill({std::vector<int>(17, 1)}); }, "prompt 0 has 17 tokens");
  expect_invalid([&] { gpu.prefill({{1, 512}}); }, "token id 512");
  expect_invalid([&] { gpu.prefill({{1, -3}}); }, "token id -3");
  expect_invalid([&] { gpu.prefill({{1}, {2}, {3}}); }, "3 prompts");
  const auto next = gpu.prefill({std::vector<int>(15, 1)});
  expect_invalid([&] { gpu.decode_step({1, 2}); }, "2 tokens for a batch of 1");
  gpu.decode_step(next);  // position 15: the last of the context
  expect_invalid([&] { gpu.decode_step(next); }, "already holds 16 tokens");
}

TEST_F(GpuModelInputs, CudnnAttentionNeedsABuildWithCudnn) {
  if (runner::cudnn_attention_built()) GTEST_SKIP() << "this build has cuDNN";
  GpuModelOptions o;
  o.precision = Precision::BF16;
  o.backend = GpuBackend::Dense;
  o.pattern = Pattern::infinite();
  o.max_tokens = 8;
  o.max_sequences = 1;
  o.max_context = 8;
  o.quiet = true;
  o.attention = PrefillAttention::Cudnn;
  expect_invalid([&] { GpuModel gpu(dir_, o); }, "use attention own");
}

TEST_F(GpuModelInputs, TooManyTokensThrows) {
  GpuModelOptions o;
  o.precision = Precision::BF16;
  o.backend = GpuBackend::Dense;
  o.pattern = Pattern::infinite();
  o.max_tokens = 8;
  o.max_sequences = 2;
  o.max_context = 16;
  o.quiet = true;
  GpuModel gpu(dir_, o);
  expect_invalid(
      [&] {
        gpu.prefill({std::vector<int>(5, 1), std::vector<int>(5, 1)});
      },
      "more than max_tokens 8");
  expect_invalid([&] { gpu.decode_step({1}); }, "decode_step before prefill");
}

TEST_F(GpuModelInputs, ConvertedCheckpointMustMatchPatternAndDtype) {
  ConvertOptions convert;
  convert.pattern = Pattern::parse("2_8");
  convert.precision = Precision::INT8;
  const std::string converted = tmp_.path() + "/converted";
  convert_checkpoint(dir_, converted, convert);
  GpuModelOptions o;
  o.precision = Precision::INT8;
  o.backend = GpuBackend::Sparse;
  o.pattern = Pattern::parse("2_6");
  o.max_tokens = 16;
  o.max_sequences = 1;
  o.max_context = 16;
  o.quiet = true;
  expect_invalid([&] { GpuModel bad(converted, o); }, "converted for pattern 2_8");
  o.pattern = Pattern::parse("2_8");
  o.precision = Precision::FP8;
  expect_invalid([&] { GpuModel bad(converted, o); }, "dtype int8");
  // The matching request loads, and equals packing the original at load.
  o.precision = Precision::INT8;
  GpuModel from_converted(converted, o);
  GpuModel from_original(dir_, o);
  const std::vector<std::vector<int>> prompt = {{3, 1, 4, 1, 5, 9, 2, 6}};
  from_converted.prefill(prompt);
  from_original.prefill(prompt);
  EXPECT_EQ(from_converted.last_logits(), from_original.last_logits());
}

}  // namespace
}  // namespace slidesparse
