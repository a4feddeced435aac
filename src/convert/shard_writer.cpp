#include "shard_writer.hpp"

#include <algorithm>

#include "release_pages.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/safetensors.hpp"

namespace slidesparse::convert_detail {

namespace {
// Copies go through the writer in pieces of this size, so a 1 GB embedding never needs
// 1 GB of memory.
constexpr std::uint64_t kCopyChunkBytes = std::uint64_t{16} << 20;

// Thrown inside the writer thread when the converting side gave up: ends it quietly.
struct Aborted {};
}  // namespace

ShardWriter::ShardWriter(const std::vector<OutputShard>& shards, std::string dir,
                         const ConvertProgress& progress, std::uint64_t total_input)
    : shards_(shards),
      dir_(std::move(dir)),
      progress_(progress),
      total_input_(total_input),
      free_buffers_{&buffers_[0], &buffers_[1]} {
  stats_.output_shards = static_cast<std::int64_t>(shards_.size());
  thread_ = std::thread([this] { run(); });
}

ShardWriter::~ShardWriter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    abort_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void ShardWriter::rethrow_if_failed() {
  if (error_) std::rethrow_exception(error_);
}

PackedLinear& ShardWriter::acquire_buffer() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !free_buffers_.empty() || error_; });
  rethrow_if_failed();
  PackedLinear* buffer = free_buffers_.back();
  free_buffers_.pop_back();
  return *buffer;
}

void ShardWriter::submit(const OutputUnit& unit, PackedLinear* packed) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    rethrow_if_failed();
    jobs_.push_back({&unit, packed});
  }
  changed_.notify_all();
}

ConvertStats ShardWriter::finish() {
  thread_.join();
  rethrow_if_failed();  // the thread is gone: no lock needed
  return stats_;
}

void ShardWriter::run() {
  try {
    for (const auto& shard : shards_) write_shard(shard);
  } catch (const Aborted&) {
    return;
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  changed_.notify_all();
}

ShardWriter::Job ShardWriter::next_job() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [this] { return !jobs_.empty() || abort_; });
  if (abort_) throw Aborted{};
  const Job job = jobs_.front();
  jobs_.pop_front();
  return job;
}

void ShardWriter::release(PackedLinear* buffer) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    free_buffers_.push_back(buffer);
  }
  changed_.notify_all();
}

void ShardWriter::write_shard(const OutputShard& shard) {
  std::vector<TensorSpec> specs;
  for (const OutputUnit* unit : shard.units)
    specs.insert(specs.end(), unit->specs.begin(), unit->specs.end());
  SafetensorsWriter writer(dir_ + "/" + shard.file_name, specs, {{"format", "pt"}});
  for (const OutputUnit* unit : shard.units) {
    const Job job = next_job();
    if (job.unit != unit) throw Error("converter: units submitted out of plan order");
    if (job.packed) {
      write_linear(writer, *unit, *job.packed);
    } else {
      copy(writer, *unit);
    }
  }
  writer.finish();
}

void ShardWriter::copy(SafetensorsWriter& writer, const OutputUnit& unit) {
  const TensorInfo& tensor = *unit.source;
  const std::uint8_t* data = unit.file->data(tensor);
  writer.begin_tensor(tensor.name);
  for (std::uint64_t offset = 0; offset < tensor.nbytes(); offset += kCopyChunkBytes) {
    const std::uint64_t size = std::min(kCopyChunkBytes, tensor.nbytes() - offset);
    writer.write_chunk(data + offset, size);
    release_pages(data + offset, size);
    advance(size);
  }
  ++stats_.copied_tensors;
  stats_.output_bytes += tensor.nbytes();
}

void ShardWriter::write_linear(SafetensorsWriter& writer, const OutputUnit& unit,
                               PackedLinear& packed) {
  writer.write(unit.specs[0].name, packed.weight.data(), packed.weight.size());
  writer.write(unit.specs[1].name, packed.scale.data(), packed.scale.size() * sizeof(float));
  release(&packed);
  ++stats_.linear_tensors;
  stats_.output_bytes += unit.nbytes();
  advance(unit.source->nbytes());
}

void ShardWriter::advance(std::uint64_t bytes) {
  done_ += bytes;
  if (progress_) progress_(done_, total_input_);
}

}  // namespace slidesparse::convert_detail
