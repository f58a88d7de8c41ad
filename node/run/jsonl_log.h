// An append-only JSON Lines event log, one object per line, flushed per line so
// a crash loses at most the line being written.
#pragma once

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

namespace murmur::run {

class JsonlLog {
 public:
  explicit JsonlLog(const std::filesystem::path& path);  // appends; throws if it cannot open
  ~JsonlLog();
  JsonlLog(const JsonlLog&) = delete;
  JsonlLog& operator=(const JsonlLog&) = delete;

  void write(const nlohmann::json& event);  // adds "time" (Unix seconds) when absent

 private:
  std::FILE* f_;
};

}  // namespace murmur::run
