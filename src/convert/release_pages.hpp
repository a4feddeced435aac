// Private to src/convert: dropping the pages of a memory-mapped input range once read.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace slidesparse::convert_detail {

// A memory-mapped checkpoint stays resident as it is read, so a pass over a whole model
// would grow the process to the model's size. The mappings are read-only: released pages
// are merely read from the file again if touched later. Only whole pages inside the range
// are released.
inline void release_pages(const std::uint8_t* data, std::uint64_t size) {
  static const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto address = reinterpret_cast<std::uintptr_t>(data);
  const auto begin = (address + page - 1) / page * page;
  const auto end = (address + size) / page * page;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace slidesparse::convert_detail
