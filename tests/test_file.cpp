#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "io_fixtures.hpp"
#include "slidesparse/error.hpp"
#include "slidesparse/file.hpp"

namespace slidesparse {
namespace {

namespace fs = std::filesystem;
using test::read_all;
using test::TempDir;

std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(MappedFile, MapsWholeFile) {
  TempDir tmp;
  const std::string path = tmp.file("data.bin");
  std::string content(100000, '\0');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 7);
  write_file_atomic(path, content);
  const MappedFile f = MappedFile::open(path);
  EXPECT_EQ(f.path(), path);
  ASSERT_EQ(f.size(), content.size());
  EXPECT_EQ(std::memcmp(f.data(), content.data(), content.size()), 0);
}

TEST(MappedFile, EmptyFileMaps) {
  TempDir tmp;
  const std::string path = tmp.file("empty");
  std::ofstream(path).close();
  const MappedFile f = MappedFile::open(path);
  EXPECT_EQ(f.size(), 0u);
  EXPECT_NE(f.data(), nullptr);
}

TEST(MappedFile, MoveKeepsMapping) {
  TempDir tmp;
  const std::string path = tmp.file("a");
  write_file_atomic(path, "hello");
  MappedFile a = MappedFile::open(path);
  const std::uint8_t* data = a.data();
  MappedFile b = std::move(a);
  EXPECT_EQ(b.data(), data);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), b.size()), "hello");
  write_file_atomic(tmp.file("c"), "other");
  b = MappedFile::open(tmp.file("c"));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(b.data()), b.size()), "other");
}

TEST(MappedFile, MissingFileIsIoErrorNamingPath) {
  TempDir tmp;
  const std::string path = tmp.file("nope.safetensors");
  try {
    MappedFile::open(path);
    FAIL() << "expected IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos) << e.what();
  }
}

TEST(MappedFile, DirectoryIsIoError) {
  TempDir tmp;
  EXPECT_THROW(MappedFile::open(tmp.path()), IoError);
}

TEST(FileWriter, SmallAndLargeWritesKeepOrder) {
  TempDir tmp;
  const std::string path = tmp.file("out.bin");
  std::string expected;
  {
    FileWriter w(path);
    const std::string small = "abc";
    const std::string large(FileWriter::kBufferBytes + 123, 'x');
    const std::string medium(FileWriter::kBufferBytes - 2, 'y');
    for (const std::string* s : {&small, &large, &small, &medium, &small}) {
      w.write(s->data(), s->size());
      expected += *s;
    }
    EXPECT_EQ(w.bytes_written(), expected.size());
    w.close();
    EXPECT_THROW(w.write("z", 1), IoError);
  }
  EXPECT_EQ(read_all(path), expected);
}

TEST(FileWriter, UnwritableDirectoryIsIoError) {
  EXPECT_THROW(FileWriter("/nonexistent-dir-slidesparse/x"), IoError);
}

TEST(WriteFileAtomic, ReplacesAndLeavesNoTemporary) {
  TempDir tmp;
  const std::string path = tmp.file("config.json");
  write_file_atomic(path, "first");
  write_file_atomic(path, "second");
  EXPECT_EQ(read_all(path), "second");
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"config.json"});
}

TEST(StagingDirectory, CommitRenamesIntoPlace) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  {
    StagingDirectory staging(out, false);
    EXPECT_EQ(staging.final_path(), out);
    EXPECT_NE(staging.path(), out);
    EXPECT_TRUE(fs::is_directory(staging.path()));
    EXPECT_FALSE(fs::exists(out));
    write_file_atomic(staging.path() + "/a.txt", "A");
    staging.commit();
    EXPECT_TRUE(staging.committed());
    EXPECT_THROW(staging.commit(), InvalidArgument);
  }
  EXPECT_EQ(read_all(out + "/a.txt"), "A");
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"model"});
}

TEST(StagingDirectory, ExceptionLeavesNothingBehind) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  try {
    StagingDirectory staging(out, false);
    write_file_atomic(staging.path() + "/a.txt", "A");
    throw std::runtime_error("conversion failed");
  } catch (const std::runtime_error&) {
  }
  EXPECT_TRUE(entries(tmp.path()).empty());
}

TEST(StagingDirectory, RefusesExistingWithoutForce) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  fs::create_directory(out);
  write_file_atomic(out + "/old.txt", "old");
  try {
    StagingDirectory staging(out, false);
    FAIL() << "expected InvalidArgument";
  } catch (const InvalidArgument& e) {
    EXPECT_EQ(std::string(e.what()),
              "output directory " + out + " exists (use --force to replace it)");
  }
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"model"});
  EXPECT_EQ(read_all(out + "/old.txt"), "old");
}

TEST(StagingDirectory, ForceReplacesOnlyAtCommit) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  fs::create_directory(out);
  write_file_atomic(out + "/old.txt", "old");
  {
    StagingDirectory staging(out + "/", true);  // a trailing slash names the same directory
    write_file_atomic(staging.path() + "/new.txt", "new");
    EXPECT_EQ(read_all(out + "/old.txt"), "old");  // untouched until commit
    staging.commit();
  }
  EXPECT_EQ(entries(out), std::vector<std::string>{"new.txt"});
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"model"});
}

TEST(StagingDirectory, ForceWithoutCommitKeepsOldOutput) {
  TempDir tmp;
  const std::string out = tmp.file("model");
  fs::create_directory(out);
  write_file_atomic(out + "/old.txt", "old");
  { StagingDirectory staging(out, true); }
  EXPECT_EQ(entries(out), std::vector<std::string>{"old.txt"});
  EXPECT_EQ(entries(tmp.path()), std::vector<std::string>{"model"});
}

TEST(StagingDirectory, CreatesMissingParents) {
  TempDir tmp;
  const std::string out = tmp.file("a/b/model");
  StagingDirectory staging(out, false);
  staging.commit();
  EXPECT_TRUE(fs::is_directory(out));
}

// Ctrl-C during a run removes the staging directory and exits with 130.
TEST(InterruptCleanupDeathTest, SigintRemovesStagingDirectory) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir tmp;
  const std::string out = tmp.file("model");
  EXPECT_EXIT(
      {
        install_interrupt_cleanup();
        StagingDirectory staging(out, false);
        write_file_atomic(staging.path() + "/partial.bin", std::string(1000, 'x'));
        ::kill(::getpid(), SIGINT);
        std::this_thread::sleep_for(std::chrono::seconds(30));  // the handler exits first
      },
      testing::ExitedWithCode(130), "interrupted, removed");
  EXPECT_TRUE(entries(tmp.path()).empty());
}

TEST(InterruptCleanupDeathTest, SigtermExitsWith143) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir tmp;
  const std::string out = tmp.file("model");
  EXPECT_EXIT(
      {
        install_interrupt_cleanup();
        StagingDirectory staging(out, false);
        ::kill(::getpid(), SIGTERM);
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      testing::ExitedWithCode(143), "");
  EXPECT_TRUE(entries(tmp.path()).empty());
}

}  // namespace
}  // namespace slidesparse
