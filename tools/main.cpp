// The `slidesparse` command: one subcommand per job (see commands.hpp).
#include <cstdio>
#include <exception>

#include "commands.hpp"
#include "slidesparse/error.hpp"

int main(int argc, char** argv) {
  CLI::App app{"slidesparse: (2N-2):2N sparse LLM inference on 2:4 Sparse Tensor Cores"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "slidesparse 0.1.0");
  namespace cli = slidesparse::cli;
  cli::add_convert_command(app);
  cli::add_verify_command(app);
  cli::add_inspect_command(app);
  cli::add_make_model_command(app);
  cli::add_demo_command(app);
  cli::add_run_command(app);
  cli::add_pipeline_command(app);
  cli::add_report_command(app);
#ifdef SLIDESPARSE_HAVE_CUDA
  cli::add_gpu_commands(app);
#endif
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const slidesparse::Error& e) {
    std::fprintf(stderr, "slidesparse: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "slidesparse: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
