// Asking the `slidesparse` command what this build and this machine can do, through child
// processes: the pipeline library itself has no CUDA.
#pragma once

#include <string>
#include <vector>

#include "slidesparse/pipeline/hardware.hpp"

namespace slidesparse::pipeline {

// Whether `launcher command... --help` exits 0: the subcommand is in this build.
bool has_command(const std::vector<std::string>& launcher, const std::vector<std::string>& command);

// Runs `launcher info`, keeps what it printed in `output_path`, and reads the GPU from it.
// No GPU, a build without `info`, or a failing `info` give a HardwareInfo without a GPU
// whose no_gpu_reason says which.
HardwareInfo detect_hardware(const std::vector<std::string>& launcher,
                             const std::string& output_path);

}  // namespace slidesparse::pipeline
