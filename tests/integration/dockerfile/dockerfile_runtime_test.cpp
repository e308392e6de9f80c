// Checks the Dockerfile's runtime stages against the binaries built here: every shared library
// `ldd` reports for a binary a stage copies in must belong to a Debian package that the stage's
// `apt-get install` lists, or that a listed package depends on (Depends and Pre-Depends, first
// alternative, transitively, as recorded by this machine's dpkg — the same Debian release).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/process.h"

namespace stowage::test {
namespace {

struct Stage {
  std::string name;
  std::set<std::string> packages;     // apt-get install arguments
  std::vector<std::string> binaries;  // file names copied from the build stage's /out/bin
};

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

// Joins continuation lines and splits the Dockerfile into stages.
std::vector<Stage> parse_stages(const std::string& dockerfile) {
  std::vector<std::string> instructions;
  std::string current;
  std::istringstream in(dockerfile);
  for (std::string line; std::getline(in, line);) {
    const auto first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    bool continued = !line.empty() && line.back() == '\\';
    if (continued) line.pop_back();
    current += line + " ";
    if (!continued) {
      instructions.push_back(current);
      current.clear();
    }
  }
  if (!current.empty()) instructions.push_back(current);

  std::vector<Stage> stages;
  for (const auto& instruction : instructions) {
    const auto w = words(instruction);
    if (w.empty()) continue;
    if (w[0] == "FROM") {
      Stage s;
      if (w.size() >= 4 && (w[2] == "AS" || w[2] == "as")) s.name = w[3];
      stages.push_back(s);
    } else if (stages.empty()) {
      continue;
    } else if (w[0] == "RUN") {
      bool installing = false;
      for (std::size_t i = 1; i < w.size(); ++i) {
        if (w[i] == "&&" || w[i] == ";") installing = false;
        if (i >= 2 && w[i - 1] == "apt-get" && w[i] == "install") {
          installing = true;
          continue;
        }
        if (installing && !w[i].starts_with("-")) stages.back().packages.insert(w[i]);
      }
    } else if (w[0] == "COPY" && w.size() >= 4 && w[1] == "--from=build") {
      for (std::size_t i = 2; i + 1 < w.size(); ++i) {
        if (w[i].starts_with("/out/bin/")) {
          stages.back().binaries.push_back(w[i].substr(std::string("/out/bin/").size()));
        }
      }
    }
  }
  return stages;
}

// Strips "(>= 1.2)" and ":any" from a dependency name.
std::string bare_package(std::string dep) {
  if (const auto p = dep.find('('); p != std::string::npos) dep.resize(p);
  if (const auto p = dep.find(':'); p != std::string::npos) dep.resize(p);
  const auto b = dep.find_first_not_of(" ");
  const auto e = dep.find_last_not_of(" ");
  return b == std::string::npos ? "" : dep.substr(b, e - b + 1);
}

// Installed package → the first alternative of each Depends/Pre-Depends entry.
std::map<std::string, std::vector<std::string>> installed_dependencies() {
  const auto r = run({"dpkg-query", "-W", "-f=${Package}\t${Depends}, ${Pre-Depends}\n"});
  if (!r.ok()) throw std::runtime_error(r.describe());
  std::map<std::string, std::vector<std::string>> deps;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const auto tab = line.find('\t');
    if (tab == std::string::npos) continue;
    auto& list = deps[line.substr(0, tab)];
    std::istringstream entries(line.substr(tab + 1));
    for (std::string entry; std::getline(entries, entry, ',');) {
      const auto name = bare_package(entry.substr(0, entry.find('|')));
      if (!name.empty()) list.push_back(name);
    }
  }
  return deps;
}

std::set<std::string> closure(const std::set<std::string>& roots,
                              const std::map<std::string, std::vector<std::string>>& deps) {
  std::set<std::string> seen;
  std::vector<std::string> todo(roots.begin(), roots.end());
  while (!todo.empty()) {
    const auto p = todo.back();
    todo.pop_back();
    if (!seen.insert(p).second) continue;
    if (const auto it = deps.find(p); it != deps.end()) {
      for (const auto& d : it->second) todo.push_back(d);
    }
  }
  return seen;
}

// The merged-/usr spellings of a library path (dpkg records the one the package shipped).
std::vector<std::string> path_spellings(const std::filesystem::path& library) {
  std::vector<std::string> candidates{library.string()};
  std::error_code ec;
  const auto real = std::filesystem::canonical(library, ec);
  if (!ec) candidates.push_back(real.string());
  for (const auto& c : std::vector<std::string>(candidates)) {
    candidates.push_back(c.starts_with("/usr/") ? c.substr(4) : "/usr" + c);
  }
  return candidates;
}

// Path → owning package for every path dpkg knows, in one dpkg call ("pkg[:arch]: path" lines).
std::map<std::string, std::string> owning_packages(const std::vector<std::string>& paths) {
  std::vector<std::string> argv{"dpkg", "-S"};
  argv.insert(argv.end(), paths.begin(), paths.end());
  const auto r = run(argv);  // non-zero when some spelling is unknown, which is expected
  std::map<std::string, std::string> owners;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const auto sep = line.find(": ");
    if (sep == std::string::npos) continue;
    auto package = line.substr(0, sep);
    package = package.substr(0, package.find_first_of(":,"));
    owners[line.substr(sep + 2)] = package;
  }
  return owners;
}

// Library paths ldd resolves for a binary ("=> /path" and the loader's own absolute path).
std::vector<std::filesystem::path> shared_libraries(const std::filesystem::path& binary) {
  const auto r = run({"ldd", binary.string()});
  if (!r.ok()) throw std::runtime_error(r.describe());
  std::vector<std::filesystem::path> libs;
  for (const auto& w : words(r.out)) {
    if (w.starts_with("/") && w.find(".so") != std::string::npos) libs.emplace_back(w);
  }
  return libs;
}

// What a stage lacks: "binary: library (package)" for each library outside its closure.
std::vector<std::string> missing_libraries(
    const Stage& stage, const std::map<std::string, std::vector<std::string>>& deps) {
  const auto have = closure(stage.packages, deps);
  std::vector<std::pair<std::string, std::filesystem::path>> needed;  // binary, library
  std::vector<std::string> spellings;
  for (const auto& binary : stage.binaries) {
    const auto path = std::filesystem::path(STOWAGE_BINARY_DIR) / "bin" / binary;
    for (const auto& lib : shared_libraries(path)) {
      needed.emplace_back(binary, lib);
      for (const auto& s : path_spellings(lib)) spellings.push_back(s);
    }
  }
  const auto owners = owning_packages(spellings);
  std::vector<std::string> missing;
  for (const auto& [binary, lib] : needed) {
    std::string package;
    for (const auto& s : path_spellings(lib)) {
      if (const auto it = owners.find(s); it != owners.end()) package = it->second;
    }
    if (package.empty() || !have.contains(package)) {
      missing.push_back(binary + ": " + lib.string() + " (" +
                        (package.empty() ? "no package owns it" : package) + ")");
    }
  }
  return missing;
}

const Stage* find_stage(const std::vector<Stage>& stages, const std::string& name) {
  for (const auto& s : stages) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

TEST(Dockerfile, RuntimeStagesInstallEverySharedLibrary) {
  const auto stages =
      parse_stages(read_text_file(std::filesystem::path(STOWAGE_SOURCE_DIR) / "Dockerfile"));
  const auto deps = installed_dependencies();
  const Stage* op = find_stage(stages, "operator");
  const Stage* agent = find_stage(stages, "agent");
  ASSERT_NE(op, nullptr);
  ASSERT_NE(agent, nullptr);
  EXPECT_THAT(op->binaries, ::testing::ElementsAre("stowage-operator"));
  EXPECT_THAT(agent->binaries, ::testing::UnorderedElementsAre("stowage-agent", "stowctl"));
  for (const Stage* stage : {op, agent}) {
    EXPECT_THAT(missing_libraries(*stage, deps), ::testing::IsEmpty()) << "stage " << stage->name;
  }
}

// The check itself notices a library the stage does not install: the agent stage without
// protobuf (stowctl's CRI messages).
TEST(Dockerfile, CheckFindsALibraryAStageLacks) {
  const auto stages =
      parse_stages(read_text_file(std::filesystem::path(STOWAGE_SOURCE_DIR) / "Dockerfile"));
  const Stage* agent = find_stage(stages, "agent");
  ASSERT_NE(agent, nullptr);
  Stage reduced = *agent;
  ASSERT_EQ(reduced.packages.erase("libprotobuf32"), 1u);
  const auto missing = missing_libraries(reduced, installed_dependencies());
  EXPECT_THAT(missing, ::testing::Contains(::testing::HasSubstr("(libprotobuf32)")));
}

// With STATIC_DEPS (the default, as the image builds it) the node agent loads the C library and
// nothing else: no libcurl chain, no second OpenSSL, no shared C++ runtime (bench/README.md,
// idle footprint).
TEST(AgentBinary, LoadsOnlyTheCLibrary) {
#if !STOWAGE_AGENT_STATIC_DEPS
  GTEST_SKIP() << "built with -DSTOWAGE_STATIC_DEPS=OFF";
#endif
  const auto agent = std::filesystem::path(STOWAGE_BINARY_DIR) / "bin" / "stowage-agent";
  std::vector<std::string> names;
  for (const auto& lib : shared_libraries(agent)) names.push_back(lib.filename().string());
  EXPECT_THAT(names,
              ::testing::UnorderedElementsAre("libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2"));
}

}  // namespace
}  // namespace stowage::test
