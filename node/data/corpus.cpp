#include "node/data/corpus.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace murmur::data {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBrownDocuments = 500;

bool is_brown_document(const std::string& name) {  // c[a-r]NN; skips README, CONTENTS, cats.txt, ...
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' &&
         std::isdigit(static_cast<unsigned char>(name[2])) &&
         std::isdigit(static_cast<unsigned char>(name[3]));
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string brown_plain_text(std::string_view tagged) {
  std::string out;
  size_t line_start = 0;
  while (line_start < tagged.size()) {
    size_t line_end = tagged.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = tagged.size();
    const std::string_view line = tagged.substr(line_start, line_end - line_start);
    bool first = true;
    for (size_t at = 0; at < line.size();) {
      const size_t start = line.find_first_not_of(" \t\r", at);
      if (start == std::string_view::npos) break;
      const size_t end = std::min(line.find_first_of(" \t\r", start), line.size());
      const std::string_view token = line.substr(start, end - start);
      const size_t slash = token.rfind('/');
      out += first ? "" : " ";
      out += token.substr(0, slash == std::string_view::npos ? token.size() : slash);
      first = false;
      at = end;
    }
    if (!first) out += '\n';
    line_start = line_end + 1;
  }
  return out;
}

std::vector<Document> load_brown(const fs::path& package_dir) {
  std::vector<Document> docs;
  for (const auto& entry : fs::directory_iterator(package_dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && is_brown_document(name)) docs.push_back({name, {}});
  }
  if (docs.size() != kBrownDocuments) {
    throw std::runtime_error(package_dir.string() + ": expected " + std::to_string(kBrownDocuments) +
                             " Brown documents (ca01 .. cr09), found " + std::to_string(docs.size()) +
                             "; delete the directory to fetch it again");
  }
  std::sort(docs.begin(), docs.end(), [](const Document& a, const Document& b) { return a.name < b.name; });
  for (Document& d : docs) d.text = brown_plain_text(read_file(package_dir / d.name));
  return docs;
}

bool is_val_document(size_t k, double val_fraction) {
  if (val_fraction <= 0) return false;
  const auto every = static_cast<size_t>(std::max(1.0, std::round(1.0 / val_fraction)));
  return k % every == 0;
}

size_t val_cut(std::string_view text, double val_fraction) {
  if (val_fraction <= 0) return text.size();
  auto cut = static_cast<size_t>(std::floor(static_cast<double>(text.size()) * (1.0 - val_fraction)));
  cut = std::min(cut, text.size());
  if (cut == 0 || cut == text.size() || text[cut - 1] == '\n') return cut;
  if (const size_t nl = text.find('\n', cut); nl != std::string_view::npos && nl + 1 < text.size())
    return nl + 1;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // not inside a character
  return cut;
}

}  // namespace murmur::data
