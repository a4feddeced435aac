// Converter throughput: makes a synthetic checkpoint of a named model (not timed), converts it
// (timed) and reports MB/s of input and the converter's peak resident memory, optionally
// appending a CSV row.
//
//   bench_convert --preset qwen2.5-7b --layers 4 --pattern 6:8 --dtype int8 --threads 2
//                 --work /tmp/bench --csv docs/results/convert_throughput.csv
#include <fmt/format.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "slidesparse/converter.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/synthetic.hpp"

namespace {
namespace fs = std::filesystem;
using namespace slidesparse;

struct Args {
  std::string preset = "qwen2.5-7b", pattern = "6:8", dtype = "int8", work = "/tmp/bench_convert",
              csv;
  std::int64_t layers = 4;
  int threads = 2;
  bool keep = false;
};

// In a child process, so that generating the model does not count in our peak memory.
void make_model_in_child(const ModelPreset& preset, std::int64_t layers, const std::string& dir) {
  const pid_t child = fork();
  if (child < 0) throw IoError("fork failed");
  if (child == 0) {
    int code = 0;
    try {
      make_synthetic_checkpoint(preset, layers, dir, 1, true);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench_convert: make-model failed: %s\n", e.what());
      code = 1;
    }
    _exit(code);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw Error("making the synthetic model failed");
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d", std::gmtime(&now));
  return text;
}

int run(const Args& args) {
  const ModelPreset& preset = find_preset(args.preset);
  ConvertOptions options;
  options.pattern = Pattern::parse(args.pattern);
  options.precision = parse_precision(args.dtype);
  options.threads = args.threads;
  options.force = true;
  const std::string model_dir = args.work + "/model", out_dir = args.work + "/converted";
  fs::create_directories(args.work);

  fmt::print("making {} with {} layers in {} (not timed)...\n", preset.name, args.layers,
             model_dir);
  std::fflush(stdout);
  make_model_in_child(preset, args.layers, model_dir);

  const ConvertStats stats = convert_checkpoint(model_dir, out_dir, options);
  const double rate = stats.input_bytes / 1e6 / stats.seconds;
  const double rss = peak_rss_mb();
  const unsigned cores = std::thread::hardware_concurrency();
  fmt::print("{} layers={} {} {} threads={} cores={}\n", preset.name, args.layers,
             options.pattern.display_name(), precision_label(options.precision), args.threads,
             cores);
  fmt::print("input {:.1f} MB, output {:.1f} MB, {:.2f} s: {:.1f} MB/s, peak RSS {:.1f} MB\n",
             stats.input_bytes / 1e6, stats.output_bytes / 1e6, stats.seconds, rate, rss);

  if (!args.csv.empty()) {
    const bool fresh = !fs::exists(args.csv);
    std::ofstream csv(args.csv, std::ios::app);
    if (fresh)
      csv << "date,preset,layers,pattern,dtype,threads,cores,input_mb,output_mb,seconds,"
             "mb_per_s,peak_rss_mb,linear_tensors,shards\n";
    csv << fmt::format("{},{},{},{},{},{},{},{:.1f},{:.1f},{:.3f},{:.1f},{:.1f},{},{}\n", today(),
                       preset.name, args.layers, options.pattern.zeros_name(),
                       precision_name(options.precision), args.threads, cores,
                       stats.input_bytes / 1e6, stats.output_bytes / 1e6, stats.seconds, rate, rss,
                       stats.linear_tensors, stats.output_shards);
    if (!csv) throw IoError(args.csv + ": cannot append the result");
  }
  if (!args.keep) fs::remove_all(args.work);
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  Args args;
  CLI::App app{"Converter throughput on a synthetic checkpoint"};
  app.add_option("--preset", args.preset, "model preset")->capture_default_str();
  app.add_option("--layers", args.layers, "decoder layers")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--pattern", args.pattern, "sparsity pattern")->capture_default_str();
  app.add_option("--dtype", args.dtype, "int8, fp8 or bf16")->capture_default_str();
  app.add_option("--threads", args.threads, "packing threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--work", args.work, "scratch directory (removed at the end)")
      ->capture_default_str();
  app.add_option("--csv", args.csv, "append a result row to this CSV file");
  app.add_flag("--keep", args.keep, "keep the scratch directory");
  CLI11_PARSE(app, argc, argv);
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_convert: error: %s\n", e.what());
    return 1;
  }
}
