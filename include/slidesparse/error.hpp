// Error types shared by every room of the library.
// The library throws; only the CLI turns an exception into an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace slidesparse {

// Base of everything the library throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A caller passed something that cannot work (bad pattern, shape, flag).
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// A file on disk is malformed (safetensors, config.json, tuning database).
class FormatError : public Error {
 public:
  using Error::Error;
};

// Reading or writing a file failed at the OS level.
class IoError : public Error {
 public:
  using Error::Error;
};

// A CUDA runtime, cuBLASLt or cuSPARSELt call failed.
class DeviceError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline std::string where(const char* file, int line) {
  return std::string(file) + ":" + std::to_string(line);
}
}  // namespace detail

}  // namespace slidesparse

// Throws `Type` with the message prefixed by nothing: input errors name the
// file/tensor themselves, so file:line of our source would only be noise.
#define SLIDESPARSE_REQUIRE(cond, Type, msg) \
  do {                                       \
    if (!(cond)) throw Type(msg);            \
  } while (0)
