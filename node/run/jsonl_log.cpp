#include "node/run/jsonl_log.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

namespace murmur::run {

JsonlLog::JsonlLog(const std::filesystem::path& path) : f_(std::fopen(path.c_str(), "a")) {
  if (!f_) throw std::runtime_error("cannot open log '" + path.string() + "': " + std::strerror(errno));
}

JsonlLog::~JsonlLog() { std::fclose(f_); }

void JsonlLog::write(const nlohmann::json& event) {
  nlohmann::json e = event;
  if (!e.contains("time"))
    e["time"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const std::string line = e.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), f_);
  std::fflush(f_);
}

}  // namespace murmur::run
