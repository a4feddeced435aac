// Private to src/convert: the writing half of the converter. The converting thread packs
// linear layers (on its worker threads) while this writer's own thread streams the previous
// results and the copied tensors into the shards, so packing and writing overlap.
#pragma once

#include <array>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "conversion_plan.hpp"
#include "slidesparse/converter.hpp"
#include "slidesparse/pack.hpp"

namespace slidesparse::convert_detail {

class ShardWriter {
 public:
  // Starts the thread that writes `shards` into `dir`, in order. `progress` is called from
  // that thread with the input bytes written so far.
  ShardWriter(const std::vector<OutputShard>& shards, std::string dir,
              const ConvertProgress& progress, std::uint64_t total_input);
  ShardWriter(const ShardWriter&) = delete;
  ShardWriter& operator=(const ShardWriter&) = delete;
  // Without finish(): stops the thread; the unfinished shard's temporary file is removed.
  ~ShardWriter();

  // A buffer to pack the next linear into; blocks while both are being written. Rethrows
  // the writer's error, if it failed.
  PackedLinear& acquire_buffer();
  // The next unit in plan order: a copy (packed == nullptr) or a linear packed into a buffer
  // from acquire_buffer().
  void submit(const OutputUnit& unit, PackedLinear* packed);
  // Waits until everything submitted is written and every shard finished; rethrows the
  // writer's error. Returns what was written.
  ConvertStats finish();

 private:
  struct Job {
    const OutputUnit* unit;
    PackedLinear* packed;
  };

  void run();
  void write_shard(const OutputShard& shard);
  Job next_job();
  void copy(SafetensorsWriter& writer, const OutputUnit& unit);
  void write_linear(SafetensorsWriter& writer, const OutputUnit& unit, PackedLinear& packed);
  void advance(std::uint64_t bytes);
  void release(PackedLinear* buffer);
  void rethrow_if_failed();  // with mutex_ held

  const std::vector<OutputShard>& shards_;
  const std::string dir_;
  const ConvertProgress& progress_;
  const std::uint64_t total_input_;
  std::uint64_t done_ = 0;
  ConvertStats stats_;  // written by the writer thread, read after join

  // Two buffers: one being packed while the other is written.
  std::array<PackedLinear, 2> buffers_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<PackedLinear*> free_buffers_;
  std::deque<Job> jobs_;
  bool abort_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace slidesparse::convert_detail
