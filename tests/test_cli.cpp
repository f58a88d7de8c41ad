// The murmur binary end to end: data prepare -> train -> eval, resume through
// the CLI, and one-line errors with a non-zero exit for bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/atomic_file.h"
#include "tests/test_util.h"

namespace murmur {
namespace {

using test::run_command;
using test::TempDir;

std::string murmur(const std::string& args) { return test::murmur_bin() + " " + args; }

// A bad invocation fails with exit code != 0 and ONE line naming the problem.
void expect_clean_error(const std::string& args, const std::string& needle) {
  const auto r = run_command(murmur(args));
  EXPECT_NE(r.rc, 0) << args;
  EXPECT_NE(r.output.find(needle), std::string::npos) << args << "\n" << r.output;
  std::string trimmed = r.output;
  while (!trimmed.empty() && trimmed.back() == '\n') trimmed.pop_back();
  EXPECT_EQ(trimmed.find('\n'), std::string::npos) << "expected one line for: " << args << "\n" << r.output;
  EXPECT_EQ(r.output.find("terminate called"), std::string::npos);
}

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // Two documents of repetitive English so a tiny model learns fast.
    std::ofstream a(dir_->path() / "a.txt"), b(dir_->path() / "b.txt");
    for (int i = 0; i < 400; ++i) a << "the quick brown fox jumps over the lazy dog " << i % 7 << "\n";
    for (int i = 0; i < 100; ++i) b << "pack my box with five dozen liquor jugs " << i % 5 << "\n";
    a.close();
    b.close();
    const auto r =
        run_command(murmur("data prepare --tokenizer byte --out " + data() + " --input " +
                           (dir_->path() / "a.txt").string() + " " + (dir_->path() / "b.txt").string()));
    ASSERT_EQ(r.rc, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }
  static std::string data() { return (dir_->path() / "data").string(); }
  static std::string train_args(const std::string& out) {
    return "train --preset tiny --data " + data() + " --out " + out +
           " --batch 4 --context 32 --threads 2 --steps 20 --eval-every 10 --eval-windows 8 --log-every 5";
  }
  static inline TempDir* dir_ = nullptr;
};

TEST_F(CliTest, TrainLogsCheckpointsAndEvaluates) {
  TempDir run;
  const auto r = run_command(murmur(train_args(run.path().string())));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("ms/step"), std::string::npos);
  std::ifstream log(run / "log.jsonl");
  std::string line;
  int steps = 0;
  bool saw_val = false;
  while (std::getline(log, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] != "step") continue;
    ++steps;
    for (const char* k : {"step", "loss", "lr", "tokens_per_s"}) EXPECT_TRUE(j.contains(k)) << k;
    saw_val |= j.contains("val_loss");
  }
  EXPECT_EQ(steps, 4);
  EXPECT_TRUE(saw_val);
  EXPECT_TRUE(std::filesystem::exists(run / "ckpt-00000020" / "model.safetensors"));

  const auto e = run_command(
      murmur("eval --checkpoint " + run.path().string() + " --data " + data() + " --context 32 --json"));
  ASSERT_EQ(e.rc, 0) << e.output;
  const auto j = nlohmann::json::parse(e.output);
  EXPECT_GT(j["tokens"].get<int>(), 0);
  EXPECT_LT(j["loss"].get<double>(), std::log(256.0));
}

TEST_F(CliTest, StopAndResumeIsBitIdenticalToOneRun) {
  TempDir a, b;
  ASSERT_EQ(run_command(murmur(train_args(a.path().string()))).rc, 0);
  const auto first = run_command(murmur(train_args(b.path().string()) + " --stop-after 8"));
  ASSERT_EQ(first.rc, 0) << first.output;
  // Settings not repeated come from the checkpoint.
  const auto second = run_command(
      murmur("train --resume " + b.path().string() + " --out " + b.path().string() + " --threads 2"));
  ASSERT_EQ(second.rc, 0) << second.output;
  EXPECT_NE(second.output.find("resumed from"), std::string::npos);
  EXPECT_EQ(sha256_file(a / "ckpt-00000020" / "model.safetensors"),
            sha256_file(b / "ckpt-00000020" / "model.safetensors"));
  EXPECT_EQ(sha256_file(a / "ckpt-00000020" / "optimizer.safetensors"),
            sha256_file(b / "ckpt-00000020" / "optimizer.safetensors"));
}

TEST_F(CliTest, EvalOfATextFileIsTheByteLevelMeanLoss) {
  TempDir run;
  ASSERT_EQ(run_command(murmur(train_args(run.path().string()))).rc, 0);
  // 3 windows of 33 bytes = 96 predicted tokens; the trailing partial window is dropped.
  std::ofstream(run / "t.txt") << std::string(33 * 3 + 10, 'x');
  const auto e = run_command(murmur("eval --checkpoint " + run.path().string() + " --text " +
                                    (run / "t.txt").string() + " --context 32 --json"));
  ASSERT_EQ(e.rc, 0) << e.output;
  EXPECT_EQ(nlohmann::json::parse(e.output)["tokens"], 96);
}

TEST_F(CliTest, BadInputsGiveOneLineErrors) {
  TempDir t;
  expect_clean_error("train --preset tiny --data /nonexistent --out " + t.path().string(), "/nonexistent");
  expect_clean_error("train --preset tiny --n-head 3 --data " + data() + " --out " + t.path().string(),
                     "must divide");
  expect_clean_error("train --bogus-flag", "bogus");
  expect_clean_error("train --preset nope --data " + data() + " --out " + t.path().string(),
                     "unknown model preset");
  expect_clean_error("eval --checkpoint /nonexistent --text /etc/hostname", "does not exist");

  // A shard with the wrong magic.
  const auto bad = t / "bad";
  std::filesystem::copy(data(), bad);
  {
    std::fstream f(bad / "train_000000.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.write("NOTATOKN", 8);
  }
  expect_clean_error("train --preset tiny --data " + bad.string() + " --out " + t.path().string(), "magic");

  // A truncated checkpoint.
  TempDir run;
  ASSERT_EQ(run_command(murmur(train_args(run.path().string()))).rc, 0);
  std::filesystem::resize_file(run / "ckpt-00000020" / "model.safetensors", 1000);
  expect_clean_error("eval --checkpoint " + run.path().string() + " --text /etc/hostname", "truncated");

  // A TOML config with a typo is reported with its line.
  std::ofstream(t / "bad.toml") << "steps = 10\nbatch = [oops\n";
  expect_clean_error("train --config " + (t / "bad.toml").string(), "line 2");
}

TEST_F(CliTest, TomlConfigSetsFlagsAndFlagsWin) {
  TempDir run;
  std::ofstream(run / "run.toml") << "preset = \"tiny\"\nbatch = 4\ncontext = 32\nsteps = 999\n"
                                  << "data = \"" << data() << "\"\nthreads = 2\neval-every = 0\n";
  const auto r = run_command(
      murmur("train --config " + (run / "run.toml").string() + " --steps 3 --out " + (run / "out").string()));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(std::filesystem::exists(run / "out" / "ckpt-00000003"));
}

}  // namespace
}  // namespace murmur
