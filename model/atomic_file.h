// Crash-safe file writes and content hashes for checkpoints and shards.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace murmur {

// Writes via a temporary file in the same directory: write, fsync, rename over
// `path`, fsync the directory. A crash leaves either the old or the new file.
// `fill` receives a FILE* to write into; any exception aborts and removes the temp file.
void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::FILE*)>& fill);
void write_text_atomic(const std::filesystem::path& path, std::string_view text);

// fsyncs a directory so renames and new entries inside it are durable.
void fsync_dir(const std::filesystem::path& dir);

// Lower-case hex SHA-256 of a file's contents (libsodium). Throws on I/O errors.
std::string sha256_file(const std::filesystem::path& path);

std::string read_text_file(const std::filesystem::path& path, size_t max_bytes = 64u << 20);

}  // namespace murmur
