// The CPU reference forward against an independent numpy implementation written from
// the Hugging Face modeling code (scripts/reference_numpy.py, logits committed in
// tests/data/models/<name>/expected_logits.json), and against itself: KV-cache decode,
// batching and causal masking must not change a single bit.
// The next check, on the GPU machine in a later session, runs transformers itself
// (LlamaForCausalLM / Qwen2ForCausalLM / BitNetForCausalLM in float32) on these checkpoints.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "model_fixtures.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/model/reference_blocks.hpp"
#include "slidesparse/model/reference_forward.hpp"

namespace slidesparse {
namespace {

using test::EditableTensor;
using test::edited_checkpoint;
using test::load_reference_model;
using test::read_json;
using test::TempDir;
using test::tiny_model_dir;

// numpy sums in another order (BLAS, pairwise): the logits agree to ~1e-6 of their
// scale. Stated tolerance: every logit within 1e-4 x the largest |logit| of its row.
constexpr double kNumpyTolerance = 1e-4;

std::vector<std::vector<int>> prompts_of(const nlohmann::json& expected) {
  return expected.at("prompts").get<std::vector<std::vector<int>>>();
}

void expect_rows_near(const std::vector<float>& actual, const nlohmann::json& expected_rows,
                      std::int64_t vocab, const std::string& what) {
  ASSERT_EQ(actual.size(), expected_rows.size() * static_cast<std::size_t>(vocab)) << what;
  for (std::size_t row = 0; row < expected_rows.size(); ++row) {
    const auto expected = expected_rows[row].get<std::vector<float>>();
    ASSERT_EQ(expected.size(), static_cast<std::size_t>(vocab));
    float scale = 0.0f;
    for (const float v : expected) scale = std::max(scale, std::abs(v));
    for (std::size_t i = 0; i < expected.size(); ++i)
      ASSERT_NEAR(actual[row * expected.size() + i], expected[i], kNumpyTolerance * scale)
          << what << ", row " << row << ", logit " << i;
  }
}

// Row `row` of a [rows, vocab] logits matrix.
std::vector<float> row_of(const std::vector<float>& logits, std::int64_t vocab, std::size_t row) {
  const auto begin = logits.begin() + static_cast<std::ptrdiff_t>(row * vocab);
  return {begin, begin + vocab};
}

class TinyModel : public ::testing::TestWithParam<std::string> {
 protected:
  std::string dir() const { return tiny_model_dir(GetParam()); }
  nlohmann::json expected() const { return read_json(dir() + "/expected_logits.json"); }
};

INSTANTIATE_TEST_SUITE_P(Architectures, TinyModel, ::testing::ValuesIn(test::tiny_model_names()),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

TEST_P(TinyModel, ArchitectureIsTheOneTheNumpyReferenceRan) {
  const ReferenceModel model = load_reference_model(dir());
  EXPECT_EQ(architecture_class(model.config().architecture),
            expected().at("architecture").get<std::string>());
}

TEST_P(TinyModel, PrefillLogitsMatchNumpy) {
  const nlohmann::json e = expected();
  ReferenceModel model = load_reference_model(dir());
  expect_rows_near(model.prefill(prompts_of(e)), e.at("last_logits"), model.config().vocab,
                   GetParam() + " prefill");
}

TEST_P(TinyModel, EveryPositionMatchesNumpy) {
  const nlohmann::json e = expected();
  const ReferenceModel model = load_reference_model(dir());
  const auto prompt = prompts_of(e).at(e.at("sequence_prompt").get<std::size_t>());
  expect_rows_near(model.sequence_logits(prompt), e.at("sequence_logits"), model.config().vocab,
                   GetParam() + " sequence");
}

TEST_P(TinyModel, RopeFrequenciesMatchNumpy) {
  const nlohmann::json e = expected();
  const ReferenceModel model = load_reference_model(dir());
  const auto expected_freq = e.at("inv_freq").get<std::vector<float>>();
  const std::vector<float> freq = rope_inv_freq(model.config());
  ASSERT_EQ(freq.size(), expected_freq.size());
  for (std::size_t i = 0; i < freq.size(); ++i)
    EXPECT_NEAR(freq[i], expected_freq[i], 1e-6 * expected_freq[i]) << "frequency " << i;
}

TEST_P(TinyModel, GreedyGenerationMatchesNumpy) {
  const nlohmann::json e = expected();
  ReferenceModel model = load_reference_model(dir());
  const int max_new = e.at("greedy_max_new").get<int>();
  EXPECT_EQ(model.generate_greedy(prompts_of(e), max_new),
            e.at("greedy_tokens").get<std::vector<std::vector<int>>>());
  for (std::size_t s = 0; s < prompts_of(e).size(); ++s)
    EXPECT_EQ(model.sequence_length(static_cast<std::int64_t>(s)),
              static_cast<std::int64_t>(prompts_of(e)[s].size()) + max_new - 1);
}

// Decoding through the KV cache computes each position exactly as a full recompute does.
TEST_P(TinyModel, DecodeWithKvCacheEqualsFullRecompute) {
  const nlohmann::json e = expected();
  ReferenceModel model = load_reference_model(dir());
  const std::int64_t vocab = model.config().vocab;
  const std::vector<int> full = prompts_of(e).at(3);  // 11 tokens
  const std::vector<float> recomputed = model.sequence_logits(full);

  const std::size_t prefix = 4;
  // A second sequence in the batch must not disturb the first.
  const std::vector<float> first =
      model.prefill({{full.begin(), full.begin() + prefix}, prompts_of(e).at(1)});
  EXPECT_EQ(row_of(first, vocab, 0), row_of(recomputed, vocab, prefix - 1));
  for (std::size_t pos = prefix; pos < full.size(); ++pos) {
    const std::vector<float> step = model.decode_step({full[pos], 5});
    EXPECT_EQ(row_of(step, vocab, 0), row_of(recomputed, vocab, pos)) << "position " << pos;
  }
  EXPECT_EQ(model.sequence_length(0), static_cast<std::int64_t>(full.size()));
  EXPECT_EQ(model.sequence_length(1),
            static_cast<std::int64_t>(prompts_of(e).at(1).size() + full.size() - prefix));
}

TEST_P(TinyModel, BatchOfVariableLengthPromptsEqualsEachPromptAlone) {
  const nlohmann::json e = expected();
  ReferenceModel model = load_reference_model(dir());
  const std::int64_t vocab = model.config().vocab;
  const auto prompts = prompts_of(e);
  const std::vector<float> batched = model.prefill(prompts);
  const std::vector<int> next = {7, 8, 9, 10};
  const std::vector<float> decoded = model.decode_step(next);
  ASSERT_EQ(model.batch_size(), static_cast<std::int64_t>(prompts.size()));
  for (std::size_t s = 0; s < prompts.size(); ++s) {
    std::vector<int> extended = prompts[s];
    extended.push_back(next[s]);
    const std::vector<float> alone = model.sequence_logits(extended);
    EXPECT_EQ(row_of(batched, vocab, s), row_of(alone, vocab, extended.size() - 2)) << s;
    EXPECT_EQ(row_of(decoded, vocab, s), row_of(alone, vocab, extended.size() - 1)) << s;
  }
}

TEST_P(TinyModel, LaterTokensDoNotChangeEarlierLogits) {
  const ReferenceModel model = load_reference_model(dir());
  const std::int64_t vocab = model.config().vocab;
  const std::vector<int> original = {5, 9, 14, 2, 77, 31, 8, 100, 64};
  std::vector<int> changed = original;
  const std::size_t changed_at = 6;
  changed[changed_at] = 99;
  const std::vector<float> a = model.sequence_logits(original);
  const std::vector<float> b = model.sequence_logits(changed);
  for (std::size_t pos = 0; pos < changed_at; ++pos)
    EXPECT_EQ(row_of(a, vocab, pos), row_of(b, vocab, pos)) << "position " << pos;
  for (std::size_t pos = changed_at; pos < original.size(); ++pos)
    EXPECT_NE(row_of(a, vocab, pos), row_of(b, vocab, pos)) << "position " << pos;
}

TEST_P(TinyModel, RejectsBadInputsNamingTheValue) {
  ReferenceModel model = load_reference_model(dir());
  const std::int64_t max_position = model.config().max_position;
  const auto expect_invalid = [](const auto& call, const std::string& needle) {
    try {
      call();
      ADD_FAILURE() << "no exception, expected one mentioning '" << needle << "'";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_invalid([&] { model.decode_step({1}); }, "before prefill");
  expect_invalid([&] { model.prefill({}); }, "no prompts");
  expect_invalid([&] { model.prefill({{1, 2}, {}}); }, "prompt 1 is empty");
  const std::vector<int> too_long(static_cast<std::size_t>(max_position + 1), 3);
  expect_invalid([&] { model.prefill({too_long}); },
                 std::to_string(max_position + 1) + " tokens, more than max_position_embeddings " +
                     std::to_string(max_position));
  expect_invalid([&] { model.prefill({{1, 128}}); }, "token id 128 out of range [0, 128)");
  expect_invalid([&] { model.sequence_logits({-1}); }, "token id -1");
  expect_invalid([&] { model.generate_greedy({{1}}, -1); }, "max_new -1");

  model.prefill({{1, 2}, {3}});
  expect_invalid([&] { model.decode_step({4}); }, "1 tokens for a batch of 2");
  expect_invalid([&] { model.decode_step({4, 200}); }, "sequence 1: token id 200");
  const std::vector<int> longest(static_cast<std::size_t>(max_position), 3);
  model.prefill({longest});
  expect_invalid([&] { model.decode_step({4}); }, "already holds max_position_embeddings");
}

// The SlideSparse path (prune, quantize, slide; lift the activations) against the dense
// quantized baseline on the same pruned weights: the same logits to the last bit.
TEST_P(TinyModel, SlideSparseLinearsEqualDenseQuantizedLinearsBitForBit) {
  const Checkpoint checkpoint = Checkpoint::open(dir());
  const ModelConfig config = model_config(checkpoint);
  const HostModelWeights weights = HostModelWeights::load(checkpoint, config);
  const auto prompts = prompts_of(expected());
  struct Case {
    Precision precision;
    const char* pattern;
  };
  for (const Case c : {Case{Precision::INT8, "6:8"}, Case{Precision::FP8, "6:8"},
                       Case{Precision::INT8, "4:6"}, Case{Precision::BF16, "2:4"}}) {
    const Pattern pattern = Pattern::parse(c.pattern);
    const auto linears = [&](ReferenceLinearPath path) {
      return packed_reference_linears(weights, pattern, c.precision, PruneMode::Magnitude, path);
    };
    ReferenceModel dense(config, weights, linears(ReferenceLinearPath::Dense));
    ReferenceModel sparse(config, weights, linears(ReferenceLinearPath::Sparse));
    const std::string what = std::string(precision_name(c.precision)) + " " + c.pattern;
    EXPECT_EQ(sparse.prefill(prompts), dense.prefill(prompts)) << what;
    EXPECT_EQ(sparse.decode_step({1, 2, 3, 4}), dense.decode_step({1, 2, 3, 4})) << what;
  }
}

// Without pruning (2_inf) and with BF16 operands the packed path is the float model up to
// BF16 rounding of each linear's inputs: a wrong layer or kind would be far off.
TEST_P(TinyModel, PackedLinearsWithoutPruningStayCloseToFloat) {
  const Checkpoint checkpoint = Checkpoint::open(dir());
  const ModelConfig config = model_config(checkpoint);
  const HostModelWeights weights = HostModelWeights::load(checkpoint, config);
  const auto prompts = prompts_of(expected());
  ReferenceModel exact(config, weights);
  ReferenceModel packed(config, weights,
                        packed_reference_linears(weights, Pattern::infinite(), Precision::BF16,
                                                 PruneMode::None, ReferenceLinearPath::Sparse));
  const std::vector<float> a = exact.prefill(prompts);
  const std::vector<float> b = packed.prefill(prompts);
  float scale = 0.0f, worst = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(a[i]));
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  EXPECT_GT(worst, 0.0f);  // BF16 did round something
  EXPECT_LT(worst, 0.03f * scale);
}

// ---- RoPE ------------------------------------------------------------------------------

// x'[i] = x[i] cos(p f_i) - x[i+h] sin(p f_i), x'[i+h] = x[i+h] cos(p f_i) + x[i] sin(p f_i),
// evaluated in double. The float angle p·f_i is off by at most half an ulp of p·f_i
// (<= 2^-24 · 255 ≈ 1.5e-5 here), hence the tolerance.
TEST(ReferenceRope, RotatesHalvesByPositionTimesFrequency) {
  const ReferenceModel model = load_reference_model(tiny_model_dir("llama-tiny"));
  const std::int64_t head_dim = model.config().head_dim;
  const std::int64_t half = head_dim / 2;
  const std::vector<float> freq = rope_inv_freq(model.config());
  std::vector<float> x(static_cast<std::size_t>(head_dim));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(1.7f * static_cast<float>(i) + 0.3f);
  for (const std::int64_t position : {0, 1, 5, 37, 255}) {
    std::vector<float> rotated = x;
    reference::rope(rotated.data(), head_dim, position, freq);
    for (std::int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(position) * freq[static_cast<std::size_t>(i)];
      const double a = x[static_cast<std::size_t>(i)], b = x[static_cast<std::size_t>(i + half)];
      EXPECT_NEAR(rotated[static_cast<std::size_t>(i)], a * std::cos(angle) - b * std::sin(angle),
                  2e-5)
          << "position " << position << ", i " << i;
      EXPECT_NEAR(rotated[static_cast<std::size_t>(i + half)],
                  b * std::cos(angle) + a * std::sin(angle), 2e-5)
          << "position " << position << ", i " << i;
    }
    if (position == 0) {
      EXPECT_EQ(rotated, x);
    }
  }
}

// The property attention relies on: q·k after RoPE depends on the positions only through
// their difference.
TEST(ReferenceRope, DotProductDependsOnlyOnRelativePosition) {
  ModelConfig config;
  config.head_dim = 16;
  config.rope_theta = 10000.0;
  const std::vector<float> freq = rope_inv_freq(config);
  std::vector<float> q(16), k(16);
  for (std::size_t i = 0; i < 16; ++i) {
    q[i] = std::cos(0.9f * static_cast<float>(i));
    k[i] = std::sin(1.3f * static_cast<float>(i) + 0.5f);
  }
  const auto rotated_dot = [&](std::int64_t pq, std::int64_t pk) {
    std::vector<float> a = q, b = k;
    reference::rope(a.data(), 16, pq, freq);
    reference::rope(b.data(), 16, pk, freq);
    double dot = 0.0;
    for (std::size_t i = 0; i < 16; ++i) dot += static_cast<double>(a[i]) * b[i];
    return dot;
  };
  EXPECT_NEAR(rotated_dot(7, 3), rotated_dot(4, 0), 1e-5);
  EXPECT_NEAR(rotated_dot(20, 13), rotated_dot(7, 0), 1e-5);
  EXPECT_GT(std::abs(rotated_dot(7, 3) - rotated_dot(7, 0)), 1e-3);
}

// ---- checkpoint errors -----------------------------------------------------------------

template <typename Call>
std::string format_error_of(const Call& call) {
  try {
    call();
  } catch (const FormatError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no FormatError";
  return "";
}

TEST(ReferenceModelLoading, MissingTensorIsNamedWithTheCheckpoint) {
  TempDir tmp;
  const std::string dir = edited_checkpoint(
      tmp, tiny_model_dir("llama-tiny"), {}, [](std::vector<EditableTensor>& tensors) {
        tensors.erase(std::find_if(tensors.begin(), tensors.end(), [](auto& t) {
          return t.spec.name == "model.layers.1.mlp.up_proj.weight";
        }));
      });
  const std::string what = format_error_of([&] { load_reference_model(dir); });
  EXPECT_NE(what.find(dir), std::string::npos) << what;
  EXPECT_NE(what.find("missing tensor 'model.layers.1.mlp.up_proj.weight'"), std::string::npos)
      << what;
  EXPECT_NE(what.find("[96, 64]"), std::string::npos) << what;
}

TEST(ReferenceModelLoading, MisshapedTensorNamesBothShapes) {
  TempDir tmp;
  const std::string dir =
      edited_checkpoint(tmp, tiny_model_dir("llama-tiny"), {}, [](std::vector<EditableTensor>& ts) {
        for (auto& t : ts)  // same bytes, transposed shape
          if (t.spec.name == "model.layers.0.self_attn.k_proj.weight") t.spec.shape = {64, 32};
      });
  const std::string what = format_error_of([&] { load_reference_model(dir); });
  EXPECT_NE(what.find("tensor 'model.layers.0.self_attn.k_proj.weight' has shape [64, 32], "
                      "expected [32, 64]"),
            std::string::npos)
      << what;
}

TEST(ReferenceModelLoading, UnsupportedArchitectureNamesConfigJson) {
  TempDir tmp;
  const std::string dir =
      edited_checkpoint(tmp, tiny_model_dir("llama-tiny"), [](nlohmann::json& c) {
        c["architectures"] = {"MistralForCausalLM"};
        c["model_type"] = "mistral";
      });
  const std::string what = format_error_of([&] { load_reference_model(dir); });
  EXPECT_NE(what.find(dir + "/config.json"), std::string::npos) << what;
  EXPECT_NE(what.find("unsupported architecture 'MistralForCausalLM'"), std::string::npos) << what;
}

TEST(ReferenceModelLoading, UnsupportedRopeTypeNamesConfigJson) {
  TempDir tmp;
  const std::string dir =
      edited_checkpoint(tmp, tiny_model_dir("llama-tiny"), [](nlohmann::json& c) {
        c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
      });
  const std::string what = format_error_of([&] { load_reference_model(dir); });
  EXPECT_NE(what.find(dir + "/config.json"), std::string::npos) << what;
  EXPECT_NE(what.find("unsupported rope_scaling.rope_type 'yarn'"), std::string::npos) << what;
}

}  // namespace
}  // namespace slidesparse
