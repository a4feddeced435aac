// Quoting untrusted JSON in error messages. Private to src/io.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace slidesparse::io_detail {

// A scalar as its JSON text (cut to 64 characters), a container by its type
// name: dumping a container of a hostile file could recurse a million levels deep.
inline std::string json_excerpt(const nlohmann::json& j) {
  if (!j.is_primitive()) return std::string("an ") + j.type_name();
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > 64) text = text.substr(0, 61) + "...";
  return text;
}

}  // namespace slidesparse::io_detail
