// Token shards, prepared datasets, the data loader, Brown text extraction and
// `murmur data prepare` on local files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <sstream>

#include "model/data_loader.h"
#include "model/token_shard.h"
#include "node/data/corpus.h"

namespace murmur {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    const auto* info = testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("murmur_data_" + std::string(info->test_suite_name()) + "_" +
                                         info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

template <typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR_HAS(stmt, text) \
  EXPECT_NE(error_of([&] { stmt; }).find(text), std::string::npos) << error_of([&] { stmt; })

std::vector<uint16_t> iota_tokens(size_t n, uint16_t first = 0) {
  std::vector<uint16_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<uint16_t>(first + i);
  return t;
}

// ---------------------------------------------------------------- shards

TEST(TokenShard, RoundTripsWithTheDocumentedHeader) {
  TempDir dir;
  const auto tokens = iota_tokens(1000, 7);
  write_shard(dir / "s.bin", tokens, 5000);
  const std::string raw = read_bytes(dir / "s.bin");
  ASSERT_EQ(raw.size(), 64u + 2 * 1000);
  EXPECT_EQ(raw.substr(0, 8), std::string("MURMTOK\0", 8));
  EXPECT_EQ(raw.substr(8, 8), std::string("\x01\0\0\0\x02\0\0\0", 8));   // version 1, dtype 2
  EXPECT_EQ(raw.substr(16, 8), std::string("\xe8\x03\0\0\0\0\0\0", 8));  // 1000 tokens
  EXPECT_EQ(raw.substr(24, 4), std::string("\x88\x13\0\0", 4));          // vocabulary 5000
  EXPECT_EQ(raw.substr(28, 36), std::string(36, '\0'));
  EXPECT_EQ(raw.substr(64, 4), std::string("\x07\0\x08\0", 4));  // little-endian tokens

  const TokenShard shard(dir / "s.bin");
  EXPECT_EQ(shard.vocab_size(), 5000);
  EXPECT_TRUE(std::equal(tokens.begin(), tokens.end(), shard.tokens().begin(), shard.tokens().end()));
  // Atomic write: nothing left behind but the shard.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 1);
}

TEST(TokenShard, EmptyShardAndMoves) {
  TempDir dir;
  write_shard(dir / "e.bin", {}, 256);
  TokenShard a(dir / "e.bin");
  EXPECT_TRUE(a.tokens().empty());
  write_shard(dir / "f.bin", iota_tokens(3), 256);
  TokenShard b(dir / "f.bin");
  a = std::move(b);
  EXPECT_EQ(a.tokens().size(), 3u);
  const TokenShard c(std::move(a));
  EXPECT_EQ(c.tokens()[2], 2);
  EXPECT_EQ(c.path(), dir / "f.bin");
}

TEST(TokenShard, WriteRejectsBadTokensAndVocabularies) {
  TempDir dir;
  const std::vector<uint16_t> tokens = {1, 2, 300};
  EXPECT_ERROR_HAS(write_shard(dir / "x.bin", tokens, 256), "token 300 at index 2");
  EXPECT_ERROR_HAS(write_shard(dir / "x.bin", tokens, 0), "vocabulary size 0");
  EXPECT_FALSE(fs::exists(dir / "x.bin"));
}

class BrokenShard : public testing::Test {
 protected:
  void SetUp() override {
    write_shard(path_, iota_tokens(100), 256);
    raw_ = read_bytes(path_);
  }
  std::string open_error(const std::string& bytes) {
    write_bytes(path_, bytes);
    return error_of([&] { TokenShard s(path_); });
  }
  TempDir dir_;
  fs::path path_ = dir_ / "train_000000.bin";
  std::string raw_;
};

TEST_F(BrokenShard, ErrorsNameTheFileAndTheProblem) {
  EXPECT_NE(open_error(raw_.substr(0, raw_.size() - 1)).find("size mismatch"), std::string::npos);
  EXPECT_NE(open_error(raw_.substr(0, raw_.size() - 1)).find(path_.string()), std::string::npos);
  EXPECT_NE(open_error(raw_ + "xx").find("size mismatch"), std::string::npos);
  EXPECT_NE(open_error(raw_.substr(0, 10)).find("truncated header"), std::string::npos);
  EXPECT_NE(open_error("").find("empty file"), std::string::npos);
  std::string foreign = raw_;
  foreign.replace(0, 8, "GGUF\0\0\0\0");
  EXPECT_NE(open_error(foreign).find("bad magic"), std::string::npos);
  std::string v2 = raw_;
  v2[8] = 2;
  EXPECT_NE(open_error(v2).find("unsupported format version 2"), std::string::npos);
  std::string dtype4 = raw_;
  dtype4[12] = 4;
  EXPECT_NE(open_error(dtype4).find("dtype of 4 bytes"), std::string::npos);
  std::string huge_count = raw_;
  huge_count[23] = '\x7f';  // count overflows count * 2
  EXPECT_NE(open_error(huge_count).find("size mismatch"), std::string::npos);
  std::string bad_token = raw_;
  bad_token[64 + 2 * 5 + 1] = 1;  // token 5 becomes 261 >= 256
  EXPECT_NE(open_error(bad_token).find("token 261 at index 5"), std::string::npos);
  fs::remove(path_);
  EXPECT_NE(error_of([&] { TokenShard s(path_); }).find("cannot open"), std::string::npos);
}

// ---------------------------------------------------------------- datasets

// A dataset whose train split is 0, 1, 2, ... (n tokens) cut into shards of `per_shard`.
void make_dataset(const fs::path& dir, size_t n, size_t per_shard, int vocab = 65536) {
  const auto all = iota_tokens(n);
  size_t index = 0;
  for (size_t at = 0; at < n; at += per_shard, ++index) {
    write_shard(shard_path(dir, "train", index), std::span(all).subspan(at, std::min(per_shard, n - at)),
                vocab);
  }
  write_shard(shard_path(dir, "val", 0), iota_tokens(10), vocab);
  const nlohmann::json meta = {{"tokenizer", "byte"},
                               {"vocab_size", vocab},
                               {"train_tokens", n},
                               {"val_tokens", 10},
                               {"source", "test"}};
  write_bytes(dir / "meta.json", meta.dump());
}

TEST(TokenDataset, ConcatenatesShardsInNameOrder) {
  TempDir dir;
  make_dataset(dir.path(), 1000, 300);
  const TokenDataset train(dir.path(), "train");
  EXPECT_EQ(train.size(), 1000u);
  EXPECT_EQ(train.vocab_size(), 65536);
  EXPECT_EQ(train.tokenizer(), "byte");
  std::vector<int32_t> out(700);
  train.copy(250, 700, out.data());  // spans three shards
  for (size_t i = 0; i < out.size(); ++i) ASSERT_EQ(out[i], static_cast<int32_t>(250 + i));
  train.copy(1000, 0, out.data());
  EXPECT_THROW(train.copy(999, 2, out.data()), std::out_of_range);
  EXPECT_EQ(TokenDataset(dir.path(), "val").size(), 10u);
  EXPECT_THROW(TokenDataset(dir.path(), "test"), std::invalid_argument);
}

TEST(TokenDataset, ErrorsNameTheProblem) {
  TempDir dir;
  EXPECT_ERROR_HAS(TokenDataset(dir / "nope", "train"), "does not exist");
  EXPECT_ERROR_HAS(TokenDataset(dir.path(), "train"), "meta.json is missing");
  make_dataset(dir.path(), 100, 60);
  fs::remove(shard_path(dir.path(), "train", 1));
  EXPECT_ERROR_HAS(TokenDataset(dir.path(), "train"), "shards hold 60 tokens but meta.json says 100");
  write_shard(shard_path(dir.path(), "train", 1), iota_tokens(40), 50000);
  EXPECT_ERROR_HAS(TokenDataset(dir.path(), "train"), "differs from meta.json's 65536");
  fs::remove(shard_path(dir.path(), "val", 0));
  EXPECT_ERROR_HAS(TokenDataset(dir.path(), "val"), "no val_NNNNNN.bin shards");
  write_bytes(dir / "meta.json", R"({"tokenizer": "byte", "vocab_size": "many"})");
  EXPECT_ERROR_HAS(TokenDataset(dir.path(), "train"), "\"vocab_size\" has the wrong type");
  write_bytes(dir / "meta.json", R"({"tokenizer": "byte"})");
  EXPECT_ERROR_HAS(TokenDataset(dir.path(), "train"), "missing field \"vocab_size\"");
  write_bytes(dir / "meta.json", "{");
  EXPECT_ERROR_HAS(TokenDataset(dir.path(), "train"), "invalid JSON");
}

// ---------------------------------------------------------------- loader

class Loader : public testing::Test {
 protected:
  static constexpr int B = 4, T = 8;
  void SetUp() override {
    make_dataset(dir_.path(), 8 * 37 + 1, 100);  // 37 windows: epochs end mid-batch
    data_ = std::make_unique<TokenDataset>(dir_.path(), "train");
  }
  // The first token of each window read in `batches` batches.
  std::vector<int32_t> read(DataLoader& loader, int batches) {
    std::vector<int32_t> starts, x(B * T), y(B * T);
    for (int i = 0; i < batches; ++i) {
      loader.next_batch(x.data(), y.data());
      for (int b = 0; b < B; ++b) {
        for (int t = 0; t + 1 < T; ++t) EXPECT_EQ(x[b * T + t + 1], y[b * T + t]);
        EXPECT_EQ(y[b * T + T - 1], x[b * T + T - 1] + 1);
        EXPECT_EQ(x[b * T] % T, 0);  // windows start at multiples of T
        starts.push_back(x[b * T]);
      }
    }
    return starts;
  }
  TempDir dir_;
  std::unique_ptr<TokenDataset> data_;
};

TEST_F(Loader, IsDeterministicPerSeedAndPeer) {
  DataLoader a(*data_, B, T, 42, 0), b(*data_, B, T, 42, 0), c(*data_, B, T, 42, 1), d(*data_, B, T, 43, 0);
  EXPECT_EQ(a.windows_per_epoch(), 37u);
  const auto ra = read(a, 30);
  EXPECT_EQ(ra, read(b, 30));
  EXPECT_NE(ra, read(c, 30));
  EXPECT_NE(ra, read(d, 30));
}

TEST_F(Loader, EachEpochVisitsEveryWindowOnceAndRollsOverMidBatch) {
  DataLoader loader(*data_, B, T, 7, 3);
  const auto starts = read(loader, 37);  // 148 windows = 4 epochs exactly
  EXPECT_EQ(loader.position().epoch, 3u);
  EXPECT_EQ(loader.position().index, 37u);
  std::vector<int32_t> all(37);
  std::iota(all.begin(), all.end(), 0);
  for (auto& v : all) v *= T;
  for (size_t e = 0; e < 4; ++e) {
    std::vector<int32_t> epoch(starts.begin() + 37 * e, starts.begin() + 37 * (e + 1));
    EXPECT_NE(epoch, all) << "epoch " << e << " is not shuffled";
    std::sort(epoch.begin(), epoch.end());
    EXPECT_EQ(epoch, all) << "epoch " << e;
  }
  EXPECT_NE(std::vector<int32_t>(starts.begin(), starts.begin() + 37),
            std::vector<int32_t>(starts.begin() + 37, starts.begin() + 74));
}

TEST_F(Loader, SeekReproducesTheStraightStream) {
  DataLoader straight(*data_, B, T, 1, 2);
  std::vector<LoaderPosition> positions;
  std::vector<int32_t> starts;
  for (int i = 0; i < 25; ++i) {
    positions.push_back(straight.position());
    const auto s = read(straight, 1);
    starts.insert(starts.end(), s.begin(), s.end());
  }
  for (int i : {0, 1, 9, 10, 18, 24}) {  // 9 and 18 sit at epoch ends
    DataLoader resumed(*data_, B, T, 1, 2);
    resumed.seek(positions[i]);
    const auto s = read(resumed, 25 - i);
    EXPECT_TRUE(std::equal(s.begin(), s.end(), starts.begin() + B * i)) << "from batch " << i;
  }
  DataLoader other(*data_, B, T, 1, 2);
  EXPECT_THROW(other.seek({0, 38}), std::out_of_range);
}

TEST_F(Loader, ShuffleIsPinned) {
  // The permutation must never change: checkpoints store only (epoch, index).
  DataLoader loader(*data_, B, T, 1234, 5);
  std::vector<int32_t> windows;
  for (const int32_t s : read(loader, 4)) windows.push_back(s / T);
  EXPECT_EQ(windows, (std::vector<int32_t>{26, 2, 5, 20, 0, 11, 36, 24, 8, 13, 28, 7, 17, 16, 30, 29}));
}

TEST_F(Loader, RejectsTooSmallSplits) {
  EXPECT_THROW(DataLoader(*data_, 38, T, 0, 0), std::invalid_argument);
  EXPECT_THROW(DataLoader(*data_, 1, 8 * 37 + 1, 0, 0), std::invalid_argument);
  EXPECT_THROW(DataLoader(*data_, 0, T, 0, 0), std::invalid_argument);
  EXPECT_NO_THROW(DataLoader(*data_, 1, 8 * 37, 0, 0));
}

// ---------------------------------------------------------------- corpora

TEST(Corpus, BrownTagsAreStripped) {
  const std::string tagged =
      "\n\n\tThe/at Fulton/np-tl County/nn-tl said/vbd ``/`` 1-1/2/cd //in ''/'' ./.\n\n\n"
      "\tIt/pps urged/vbd  Jr./np ./.  \r\n\t \n";
  EXPECT_EQ(data::brown_plain_text(tagged), "The Fulton County said `` 1-1/2 / '' .\nIt urged Jr. .\n");
  EXPECT_EQ(data::brown_plain_text(""), "");
}

TEST(Corpus, ValidationSplitRules) {
  std::vector<size_t> val;
  for (size_t k = 0; k < 100; ++k) {
    if (data::is_val_document(k, 0.05)) val.push_back(k);
  }
  EXPECT_EQ(val, (std::vector<size_t>{0, 20, 40, 60, 80}));
  EXPECT_FALSE(data::is_val_document(0, 0.0));
  EXPECT_TRUE(data::is_val_document(4, 0.5));
  EXPECT_FALSE(data::is_val_document(5, 0.5));
  EXPECT_TRUE(data::is_val_document(3, 0.34));  // round(1/0.34) = 3

  const std::string text = "line one\nline two\nline three\nfour\n";  // 34 bytes
  EXPECT_EQ(data::val_cut(text, 0.5), 18u);  // 17 is inside "line two\n": the next line starts at 18
  EXPECT_EQ(data::val_cut(text, 0.0), text.size());
  EXPECT_EQ(data::val_cut("abc\xc3\xa9"
                          "def",
                          0.5),
            3u);  // no later line: back to a character boundary
}

// ---------------------------------------------------------------- murmur data prepare

int run(const std::string& args) { return std::system((std::string(MURMUR_BINARY) + " " + args).c_str()); }

TEST(DataPrepare, SplitsInputFilesByDocument) {
  TempDir dir;
  std::string expected_train, expected_val;
  std::string inputs;
  for (int k = 0; k < 5; ++k) {
    const std::string text = "document " + std::to_string(k) + (k == 3 ? " without newline" : "\n");
    const std::string name = "doc" + std::to_string(k) + ".txt";
    write_bytes(dir / name, text);
    inputs += " " + (dir / name).string();
    // --val-fraction 0.4: every round(2.5) = 3rd document, from the first, is val.
    (k % 3 == 0 ? expected_val : expected_train) += text + (text.back() == '\n' ? "\n" : "\n\n");
  }
  const std::string out = (dir / "out").string();
  ASSERT_EQ(run("data prepare --tokenizer byte --val-fraction 0.4 --shard-tokens 16 --out " + out +
                " --input" + inputs + " > " + (dir / "log").string()),
            0);
  EXPECT_NE(read_bytes(dir / "log").find("prepared 5 documents (3 train, 2 val)"), std::string::npos);
  const auto meta = nlohmann::json::parse(read_bytes(dir / "out" / "meta.json"));
  EXPECT_EQ(meta["tokenizer"], "byte");
  EXPECT_EQ(meta["vocab_size"], 256);
  EXPECT_EQ(meta["train_documents"], 3);
  for (const auto& [split, expected] : {std::pair{"train", expected_train}, std::pair{"val", expected_val}}) {
    const TokenDataset data(dir / "out", split);
    ASSERT_EQ(data.size(), expected.size()) << split;
    std::vector<int32_t> ids(data.size());
    data.copy(0, ids.size(), ids.data());
    EXPECT_EQ(std::string(ids.begin(), ids.end()), expected) << split;
    EXPECT_EQ(list_shards(dir / "out", split).size(), (expected.size() + 15) / 16) << split;
  }
  // A single file is cut at a line boundary; preparing again leaves no stale shards behind.
  std::string lines;
  for (int i = 10; i < 30; ++i) lines += "line " + std::to_string(i) + "\n";
  write_bytes(dir / "one.txt", lines);
  ASSERT_EQ(run("data prepare --tokenizer byte --val-fraction 0.1 --out " + out + " --input " +
                (dir / "one.txt").string() + " > " + (dir / "log").string()),
            0);
  EXPECT_EQ(list_shards(dir / "out", "train").size(), 1u);
  const TokenDataset val(dir / "out", "val");
  std::vector<int32_t> ids(val.size());
  val.copy(0, ids.size(), ids.data());
  EXPECT_EQ(std::string(ids.begin(), ids.end()), "line 28\nline 29\n\n");
  EXPECT_EQ(TokenDataset(dir / "out", "train").size(), 18u * 8 + 1);
}

TEST(DataEncode, WritesThroughToTheNamedFile) {
  // --out may name a device, FIFO or symlink: it is written to, never renamed over.
  TempDir dir;
  write_bytes(dir / "in.txt", "hi");
  fs::create_symlink(dir / "real.ids", dir / "link.ids");
  ASSERT_EQ(run("data encode --tokenizer byte --input " + (dir / "in.txt").string() + " --out " +
                (dir / "link.ids").string() + " > " + (dir / "log").string()),
            0);
  EXPECT_TRUE(fs::is_symlink(dir / "link.ids"));
  EXPECT_EQ(read_bytes(dir / "real.ids"), "104\n105\n");
  ASSERT_EQ(run("data decode --tokenizer byte --input " + (dir / "real.ids").string() + " --out " +
                (dir / "out.txt").string() + " > " + (dir / "log").string()),
            0);
  EXPECT_EQ(read_bytes(dir / "out.txt"), "hi");
}

TEST(DataPrepare, BadInvocationsFailWithOneLine) {
  TempDir dir;
  const std::string err = (dir / "err").string();
  EXPECT_NE(run("data prepare --tokenizer byte --out " + (dir / "o").string() + " 2> " + err), 0);
  EXPECT_NE(read_bytes(err).find("give either --corpus brown or --input"), std::string::npos);
  EXPECT_NE(run("data prepare --tokenizer byte --input /nonexistent/file --out x 2> " + err), 0);
  EXPECT_NE(run("data prepare --tokenizer bpe --corpus brown --out x 2> " + err), 0);
  EXPECT_NE(run("data prepare --tokenizer byte --corpus brown --val-fraction 0.9 --out x 2> " + err), 0);
}

}  // namespace
}  // namespace murmur
