// Runs the fuzz target over every file in the given directories, without libFuzzer, so any
// compiler can check the committed corpus (CTest: fuzz_corpus_replay). A property violation aborts
// the process; the file being replayed is printed first so the input is known.
#include <algorithm>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

char current[4096];

extern "C" void report_crash(int signal) {
  constexpr char prefix[] = "fuzz_replay: crashed on ";
  (void)!write(STDERR_FILENO, prefix, sizeof prefix - 1);
  (void)!write(STDERR_FILENO, current, std::strlen(current));
  (void)!write(STDERR_FILENO, "\n", 1);
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: fuzz_replay DIR_OR_FILE...\n";
    return 2;
  }
  for (const int s : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL}) std::signal(s, report_crash);

  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg = argv[i];
    if (std::filesystem::is_directory(arg)) {
      for (const auto& entry : std::filesystem::recursive_directory_iterator(arg)) {
        if (entry.is_regular_file()) inputs.push_back(entry.path());
      }
    } else if (std::filesystem::is_regular_file(arg)) {
      inputs.push_back(arg);
    } else {
      std::cerr << "fuzz_replay: no such file or directory: " << arg << '\n';
      return 2;
    }
  }
  std::sort(inputs.begin(), inputs.end());
  if (inputs.empty()) {
    std::cerr << "fuzz_replay: no inputs found\n";
    return 1;
  }

  std::size_t passed = 0;
  std::size_t failed = 0;
  for (const auto& path : inputs) {
    const std::string name = path.string();
    std::snprintf(current, sizeof current, "%s", name.c_str());
    std::ifstream in(path, std::ios::binary);
    const std::string bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    try {
      const int rc =
          LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      if (rc == 0) {
        ++passed;
      } else {
        ++failed;
        std::cerr << "fuzz_replay: " << name << " returned " << rc << '\n';
      }
    } catch (const std::exception& e) {
      ++failed;
      std::cerr << "fuzz_replay: " << name << " threw: " << e.what() << '\n';
    }
  }
  std::cout << passed << " passed, " << failed << " failed\n";
  return failed == 0 ? 0 : 1;
}
