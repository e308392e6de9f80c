// Archives: docker-archive and oci-archive round trips through the store, the reader on every
// layout docker and podman write (built here by hand: there is no Docker engine), and failures
// that must leave nothing behind. The real peers (podman, skopeo) are the oracles of
// tests/integration/oci_archive.
#include "oci/archive.h"

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/sha256.h"
#include "oci/manifest.h"
#include "unit/oci_store/oci_layout_check.h"
#include "unit/oci_store/test_util.h"

namespace stowage::oci {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::TarBuilder;
using testing::TempDir;
using ::testing::UnorderedElementsAre;

std::string hex(const std::string& digest) {
  return digest.substr(7);
}

std::vector<std::string> names_of(const Store& store) {
  std::vector<std::string> out;
  for (const auto& i : store.list()) out.push_back(i.name);
  return out;
}

Error error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no stowage::Error thrown";
  return Error(Code::kInternal, "none");
}

// The pieces of an image as docker save and podman save lay them out.
struct Parts {
  std::vector<std::string> layers;  // uncompressed tars
  std::vector<std::string> diff_ids;
  std::string config;
  std::string config_digest;
};

Parts make_parts(const std::vector<std::map<std::string, std::string>>& layers,
                 const std::string& label = "") {
  Parts p;
  for (const auto& files : layers) {
    p.layers.push_back(testing::layer_tar(files));
    p.diff_ids.push_back(sha256_digest(p.layers.back()));
  }
  json config = {{"architecture", "amd64"},
                 {"os", "linux"},
                 {"config", {{"Cmd", {"sh"}}, {"Labels", {{"l", label}}}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", p.diff_ids}}},
                 {"history", json::array()}};
  p.config = config.dump();
  p.config_digest = sha256_digest(p.config);
  return p;
}

class ArchiveTest : public ::testing::Test {
 protected:
  fs::path write(const std::string& name, const std::string& bytes) {
    const fs::path p = dir_ / name;
    testing::write_whole(p, bytes);
    return p;
  }
  ImportResult import(const std::string& bytes, const ImportOptions& options = {}) {
    return import_archive(store_, write("in.tar", bytes), options);
  }
  void expect_image(const ImportedImage& image, const Parts& parts) {
    EXPECT_EQ(image.config_digest, parts.config_digest);
    const auto manifest = parse_image_manifest(store_.read(image.manifest.digest));
    ASSERT_EQ(manifest.layers.size(), parts.layers.size());
    for (std::size_t i = 0; i < parts.layers.size(); ++i) {
      // Uncompressed layers are stored as given: their digest is the diffID.
      EXPECT_EQ(manifest.layers[i].digest, parts.diff_ids[i]);
      EXPECT_EQ(manifest.layers[i].media_type, "application/vnd.docker.image.rootfs.diff.tar");
    }
    EXPECT_EQ(manifest.config.digest, parts.config_digest);
    EXPECT_EQ(store_.read(parts.config_digest), parts.config);
    EXPECT_TRUE(store_.verify().clean());
    EXPECT_THAT(testing::oci_layout_problems(store_.root()), IsEmpty());
  }

  TempDir dir_;
  Store store_{dir_ / "store"};
};

// ---- reading what docker and podman write --------------------------------------------------

TEST_F(ArchiveTest, ReadsPodmanSave) {
  const Parts p = make_parts({{{"a.txt", "a"}}, {{"b.txt", "b"}}});
  TarBuilder b;
  std::vector<std::string> layer_files;
  std::string parent;
  for (std::size_t i = 0; i < p.layers.size(); ++i) {
    layer_files.push_back(hex(p.diff_ids[i]) + ".tar");
    b.file(layer_files.back(), p.layers[i]);
  }
  b.file(hex(p.config_digest) + ".json", p.config);
  for (std::size_t i = 0; i < p.layers.size(); ++i) {
    const std::string id = sha256_hex("layer" + std::to_string(i));
    b.symlink(id + "/layer.tar", "../" + layer_files[i]);
    b.file(id + "/VERSION", "1.0");
    b.file(id + "/json", json{{"id", id}, {"parent", parent}}.dump());
    parent = id;
  }
  b.file("manifest.json", json::array({{{"Config", hex(p.config_digest) + ".json"},
                                        {"RepoTags", {"localhost/app:v1", "quay.io/x/y:2"}},
                                        {"Layers", layer_files}}})
                              .dump());
  b.file("repositories", json{{"localhost/app", {{"v1", parent}}}}.dump());
  const ImportResult r = import(b.finish());
  EXPECT_EQ(r.format, ArchiveFormat::kDockerArchive);
  ASSERT_EQ(r.images.size(), 1u);
  expect_image(r.images[0], p);
  EXPECT_THAT(r.images[0].names, ElementsAre("localhost/app:v1", "quay.io/x/y:2"));
  EXPECT_EQ(r.images[0].manifest.media_type, media::kDockerManifest);
  EXPECT_EQ(store_.resolve("localhost/app:v1")->digest, r.images[0].manifest.digest);
  EXPECT_THAT(names_of(store_), ElementsAre("localhost/app:v1", "quay.io/x/y:2"));
}

TEST_F(ArchiveTest, FollowsSymlinksNamedInManifestJson) {
  const Parts p = make_parts({{{"a.txt", "a"}}});
  const std::string id = sha256_hex("id");
  const std::string tar =
      TarBuilder()
          .file(hex(p.diff_ids[0]) + ".tar", p.layers[0])
          .symlink(id + "/layer.tar", "../" + hex(p.diff_ids[0]) + ".tar")
          .file("config.json", p.config)
          .file("manifest.json", json::array({{{"Config", "./config.json"},
                                               {"RepoTags", {"app:1"}},
                                               {"Layers", {id + "/layer.tar"}}}})
                                     .dump())
          .finish();
  const ImportResult r = import(tar);
  ASSERT_EQ(r.images.size(), 1u);
  expect_image(r.images[0], p);
  EXPECT_THAT(r.images[0].names, ElementsAre("docker.io/library/app:1"));
}

TEST_F(ArchiveTest, ReadsLegacyDockerSave) {
  // docker save ≤ 24: <v1id>/{VERSION,json,layer.tar}, <config-hex>.json, manifest.json,
  // repositories; two images sharing their base layer, compressed as `docker save | gzip`.
  const Parts base = make_parts({{{"etc/os-release", "base"}}, {{"app", "one"}}}, "one");
  const Parts other = make_parts({{{"etc/os-release", "base"}}, {{"app", "two"}}}, "two");
  ASSERT_EQ(base.diff_ids[0], other.diff_ids[0]);
  TarBuilder b;
  const auto v1 = [](const Parts& p, std::size_t i) {
    return sha256_hex(p.diff_ids[i] + "v1" + std::to_string(i) + p.config);
  };
  json manifest = json::array();
  json repositories = json::object();
  for (const Parts* p : {&base, &other}) {
    json layers = json::array();
    for (std::size_t i = 0; i < p->layers.size(); ++i) {
      const std::string id = i == 0 ? v1(base, 0) : v1(*p, i);
      if (p == &base || i > 0) {
        b.dir(id);
        b.file(id + "/VERSION", "1.0");
        b.file(id + "/json", json{{"id", id}}.dump());
        b.file(id + "/layer.tar", p->layers[i]);
      }
      layers.push_back(id + "/layer.tar");
    }
    b.file(hex(p->config_digest) + ".json", p->config);
    const std::string tag = p == &base ? "one" : "two";
    manifest.push_back({{"Config", hex(p->config_digest) + ".json"},
                        {"RepoTags", {"busybox:" + tag}},
                        {"Layers", layers}});
    repositories["busybox"][tag] = layers.back().get<std::string>().substr(0, 64);
  }
  b.file("manifest.json", manifest.dump());
  b.file("repositories", repositories.dump());
  const ImportResult r = import(testing::gzip(b.finish()));
  ASSERT_EQ(r.images.size(), 2u);
  expect_image(r.images[0], base);
  expect_image(r.images[1], other);
  EXPECT_THAT(names_of(store_),
              ElementsAre("docker.io/library/busybox:one", "docker.io/library/busybox:two"));
}

TEST_F(ArchiveTest, ReadsDocker25OciLayoutPreferringIndexJson) {
  // docker save ≥ 25: an OCI layout with uncompressed layers under their diffID, plus
  // manifest.json for older loaders. index.json wins.
  const Parts p = make_parts({{{"a", "1"}}, {{"b", "2"}}});
  json layers = json::array();
  for (std::size_t i = 0; i < p.layers.size(); ++i) {
    layers.push_back(
        {{"mediaType", media::kOciLayer}, {"digest", p.diff_ids[i]}, {"size", p.layers[i].size()}});
  }
  const std::string manifest = json{
      {"schemaVersion", 2},
      {"mediaType", media::kOciManifest},
      {"config",
       {{"mediaType", media::kOciConfig}, {"digest", p.config_digest}, {"size", p.config.size()}}},
      {"layers", layers}}.dump();
  const std::string manifest_digest = sha256_digest(manifest);
  const json index = {{"schemaVersion", 2},
                      {"mediaType", media::kOciIndex},
                      {"manifests",
                       {{{"mediaType", media::kOciManifest},
                         {"digest", manifest_digest},
                         {"size", manifest.size()},
                         {"annotations",
                          {{"io.containerd.image.name", "docker.io/library/busybox:latest"},
                           {"org.opencontainers.image.ref.name", "latest"}}}}}}};
  TarBuilder b;
  b.dir("blobs").dir("blobs/sha256");
  for (std::size_t i = 0; i < p.layers.size(); ++i) {
    b.file("blobs/sha256/" + hex(p.diff_ids[i]), p.layers[i]);
  }
  b.file("blobs/sha256/" + hex(p.config_digest), p.config);
  b.file("blobs/sha256/" + hex(manifest_digest), manifest);
  b.file("index.json", index.dump());
  b.file("manifest.json",
         json::array(
             {{{"Config", "blobs/sha256/" + hex(p.config_digest)},
               {"RepoTags", {"busybox:latest"}},
               {"Layers",
                {"blobs/sha256/" + hex(p.diff_ids[0]), "blobs/sha256/" + hex(p.diff_ids[1])}}}})
             .dump());
  b.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  b.file("repositories", "{}");
  const ImportResult r = import(b.finish());
  EXPECT_EQ(r.format, ArchiveFormat::kOciLayout);
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_EQ(r.images[0].manifest.digest, manifest_digest);  // the layout's own manifest
  EXPECT_EQ(r.images[0].config_digest, p.config_digest);
  EXPECT_THAT(r.images[0].names, ElementsAre("docker.io/library/busybox:latest"));
  EXPECT_EQ(store_.resolve("busybox")->digest, manifest_digest);
  EXPECT_TRUE(store_.verify().clean());
}

TEST_F(ArchiveTest, ReadsCompressedLayersAndSynthesizesOciForZstd) {
  // ggcr writes gzip layers as <hex>.tar.gz and names the config sha256:<hex>.
  const Parts p = make_parts({{{"a", "1"}}, {{"b", "2"}}});
  const std::string gz = testing::gzip(p.layers[0]);
  const std::string zst = testing::compress(p.layers[1], Compression::kZstd);
  const std::string tar =
      TarBuilder()
          .file("sha256:" + hex(p.config_digest), p.config)
          .file("l0.tar.gz", gz)
          .file("l1.tar.zst", zst)
          .file("manifest.json", json::array({{{"Config", "sha256:" + hex(p.config_digest)},
                                               {"RepoTags", {"ex.com/c:1"}},
                                               {"Layers", {"l0.tar.gz", "l1.tar.zst"}}}})
                                     .dump())
          .finish();
  const ImportResult r = import(tar);
  ASSERT_EQ(r.images.size(), 1u);
  const auto manifest = parse_image_manifest(store_.read(r.images[0].manifest.digest));
  EXPECT_EQ(manifest.media_type, media::kOciManifest);
  EXPECT_EQ(manifest.config.media_type, media::kOciConfig);
  ASSERT_EQ(manifest.layers.size(), 2u);
  EXPECT_EQ(manifest.layers[0].media_type, media::kOciLayerGzip);
  EXPECT_EQ(manifest.layers[0].digest, sha256_digest(gz));  // stored as given
  EXPECT_EQ(manifest.layers[1].media_type, media::kOciLayerZstd);
  EXPECT_EQ(manifest.layers[1].digest, sha256_digest(zst));
  EXPECT_EQ(store_.read(manifest.layers[1].digest, 1 << 20), zst);
}

TEST_F(ArchiveTest, RefusesWrongDiffIdsAndKeepsNoName) {
  const Parts p = make_parts({{{"a", "1"}}});
  const Parts liar = make_parts({{{"a", "2"}}});
  for (const bool compressed : {false, true}) {
    SCOPED_TRACE(compressed);
    const std::string layer = compressed ? testing::gzip(liar.layers[0]) : liar.layers[0];
    const std::string tar =
        TarBuilder()
            .file("c.json", p.config)
            .file("l.tar", layer)
            .file(
                "manifest.json",
                json::array({{{"Config", "c.json"}, {"RepoTags", {"a:1"}}, {"Layers", {"l.tar"}}}})
                    .dump())
            .finish();
    const Error e = error_of([&] { import(tar); });
    EXPECT_EQ(e.code(), Code::kDataLoss) << e.what();
    EXPECT_THAT(e.what(), HasSubstr("invalid diffID"));
    EXPECT_THAT(names_of(store_), IsEmpty());
  }
}

TEST_F(ArchiveTest, RefusesBrokenArchives) {
  const Parts p = make_parts({{{"a", "1"}}});
  const auto docker = [&](json manifest, const std::string& config_name = "c.json") {
    return TarBuilder()
        .file(config_name, p.config)
        .file("l.tar", p.layers[0])
        .file("manifest.json", manifest.dump())
        .finish();
  };
  const json good = {{"Config", "c.json"}, {"RepoTags", {"a:1"}}, {"Layers", {"l.tar"}}};
  struct Case {
    std::string name;
    std::string tar;
    Code code;
    std::string message;
  };
  json missing_config = good;
  missing_config["Config"] = "nope.json";
  json escaping = good;
  escaping["Layers"] = {"../l.tar"};
  json too_many = good;
  too_many["Layers"] = {"l.tar", "l.tar"};
  json bad_tag = good;
  bad_tag["RepoTags"] = {"Invalid:1"};
  json digest_tag = good;
  digest_tag["RepoTags"] = {"a@" + p.diff_ids[0]};
  const std::string oci_liar = TarBuilder()
                                   .file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")
                                   .file("blobs/sha256/" + hex(sha256_digest("truth")), "a lie")
                                   .file("index.json", R"({"schemaVersion":2,"manifests":[]})")
                                   .finish();
  const std::vector<Case> cases = {
      {"missing config", docker(json::array({missing_config})), Code::kInvalidArgument,
       "\"nope.json\" is not a file in the archive"},
      {"escaping layer path", docker(json::array({escaping})), Code::kInvalidArgument,
       "contains \"..\""},
      {"layer count", docker(json::array({too_many})), Code::kInvalidArgument,
       "2 layers but the config lists 1 diff_ids"},
      {"bad tag", docker(json::array({bad_tag})), Code::kInvalidArgument, "RepoTags"},
      {"digest tag", docker(json::array({digest_tag})), Code::kInvalidArgument, "invalid tag"},
      {"empty manifest.json", docker(json::array()), Code::kInvalidArgument, "non-empty list"},
      {"config named by another hash",
       docker(json::array({{{"Config", hex(sha256_digest("x")) + ".json"},
                            {"RepoTags", {"a:1"}},
                            {"Layers", {"l.tar"}}}}),
              hex(sha256_digest("x")) + ".json"),
       Code::kDataLoss, "hashes to"},
      {"oci blob lies", oci_liar, Code::kDataLoss, "content hashes to"},
      {"no image", TarBuilder().file("hello", "world").finish(), Code::kInvalidArgument,
       "neither oci-layout nor manifest.json"},
      {"oci without index",
       TarBuilder().file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})").finish(),
       Code::kInvalidArgument, "without index.json"},
      {"oci missing blob",
       TarBuilder()
           .file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")
           .file("index.json", json{{"schemaVersion", 2},
                                    {"manifests",
                                     {{{"mediaType", media::kOciManifest},
                                       {"digest", sha256_digest("absent")},
                                       {"size", 6}}}}}
                                   .dump())
           .finish(),
       Code::kNotFound, "neither in the archive nor in the store"},
      {"hostile member", TarBuilder().file("../../etc/cron.d/x", "boom").finish(),
       Code::kInvalidArgument, "contains \"..\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const Error e = error_of([&] { import(c.tar); });
    EXPECT_EQ(e.code(), c.code) << e.what();
    EXPECT_THAT(e.what(), HasSubstr(c.message));
  }
  EXPECT_THAT(names_of(store_), IsEmpty());
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_ / "store" / "ingest"), {}), 0);
}

// ---- round trips ------------------------------------------------------------------------------

TEST_F(ArchiveTest, DockerArchiveRoundTripStoresSharedLayersOnce) {
  const auto shared = std::map<std::string, std::string>{{"etc/base", "base layer"}};
  const auto a =
      testing::put_image(store_, {.layers = {shared, {{"app", "a"}}}, .labels = {{"i", "a"}}});
  const auto b = testing::put_image(store_, {.layers = {shared, {{"app", "b"}}},
                                             .compression = Compression::kZstd,
                                             .labels = {{"i", "b"}}});
  const auto c = testing::put_image(
      store_, {.layers = {{{"x", "y"}}}, .compression = Compression::kNone, .oci = false});
  const fs::path out = dir_ / "out" / "images.tar";
  fs::create_directories(out.parent_path());
  write_docker_archive(store_,
                       {{a.manifest, {"alpine:3", "quay.io/team/app:v1"}},
                        {b.manifest, {"localhost:5000/b:latest"}},
                        {c.manifest, {}},
                        {a.manifest, {"alpine:edge"}}},
                       out, {.repo_tags = RepoTagStyle::kFamiliar});
  EXPECT_EQ(std::distance(fs::directory_iterator(out.parent_path()), {}), 1);  // no temp left

  const auto files = testing::tar_files(out);
  std::vector<std::string> names;
  for (const auto& [name, content] : files) names.push_back(name);
  EXPECT_THAT(
      names, UnorderedElementsAre(hex(a.diff_ids[0]) + ".tar", hex(a.diff_ids[1]) + ".tar",
                                  hex(b.diff_ids[1]) + ".tar", hex(c.diff_ids[0]) + ".tar",
                                  hex(a.config_digest) + ".json", hex(b.config_digest) + ".json",
                                  hex(c.config_digest) + ".json", "manifest.json", "repositories"));
  EXPECT_EQ(files.at(hex(a.diff_ids[0]) + ".tar"), a.layer_tars[0]);  // decompressed
  EXPECT_EQ(files.at(hex(b.diff_ids[1]) + ".tar"), b.layer_tars[1]);
  const json manifest = json::parse(files.at("manifest.json"));
  ASSERT_EQ(manifest.size(), 3u);
  EXPECT_EQ(manifest[0]["Config"], hex(a.config_digest) + ".json");
  EXPECT_EQ(manifest[0]["RepoTags"],
            json({"alpine:3", "quay.io/team/app:v1", "alpine:edge"}));  // familiar form
  EXPECT_EQ(manifest[0]["Layers"],
            json({hex(a.diff_ids[0]) + ".tar", hex(a.diff_ids[1]) + ".tar"}));
  EXPECT_EQ(manifest[1]["RepoTags"], json({"localhost:5000/b:latest"}));
  EXPECT_EQ(manifest[2]["RepoTags"], json::array());
  const json repositories = json::parse(files.at("repositories"));
  EXPECT_TRUE(repositories["alpine"].contains("3"));
  EXPECT_TRUE(repositories["alpine"].contains("edge"));
  EXPECT_TRUE(repositories["quay.io/team/app"].contains("v1"));

  TempDir other;
  Store copy(other / "store");
  const ImportResult r = import_archive(copy, out);
  ASSERT_EQ(r.images.size(), 3u);
  EXPECT_EQ(r.images[0].config_digest, a.config_digest);  // image IDs survive
  EXPECT_EQ(r.images[1].config_digest, b.config_digest);
  EXPECT_EQ(r.images[2].config_digest, c.config_digest);
  EXPECT_EQ(parse_image_manifest(copy.read(r.images[2].manifest.digest)).layers[0].digest,
            c.layer_digests[0]);  // uncompressed: the very blob
  EXPECT_THAT(names_of(copy),
              ElementsAre("docker.io/library/alpine:3", "quay.io/team/app:v1",
                          "docker.io/library/alpine:edge", "localhost:5000/b:latest", ""));
  EXPECT_TRUE(copy.verify().clean());
  EXPECT_THAT(testing::oci_layout_problems(other / "store"), IsEmpty());
}

TEST_F(ArchiveTest, DockerArchiveWritesFullNamesByDefault) {
  const auto a = testing::put_image(store_);
  const fs::path out = dir_ / "a.tar";
  write_docker_archive(store_, {{a.manifest, {"alpine:3", "quay.io/x/y"}}}, out);
  const auto files = testing::tar_files(out);
  EXPECT_EQ(json::parse(files.at("manifest.json"))[0]["RepoTags"],
            json({"docker.io/library/alpine:3", "quay.io/x/y:latest"}));
  const json repositories = json::parse(files.at("repositories"));
  // The top layer's v1 ID is its chain ID (one layer: the diffID).
  EXPECT_EQ(repositories["docker.io/library/alpine"]["3"], hex(a.diff_ids[0]));
  EXPECT_EQ(repositories["quay.io/x/y"]["latest"], hex(a.diff_ids[0]));
}

TEST_F(ArchiveTest, DockerArchiveRefusesIndexesAndMissingBlobsWithoutAFile) {
  const auto a = testing::put_image(store_, {.layers = {{{"a", "1"}}, {{"b", "2"}}}});
  const fs::path out = dir_ / "out" / "x.tar";
  fs::create_directories(out.parent_path());
  const std::string idx = json{
      {"schemaVersion", 2},
      {"mediaType", media::kOciIndex},
      {"manifests",
       {to_json(a.manifest)}}}.dump();
  const Descriptor index = testing::put_blob(store_, media::kOciIndex, idx);
  EXPECT_EQ(error_of([&] {
              write_docker_archive(store_, {{index, {"a:1"}}}, out);
            }).code(),
            Code::kInvalidArgument);
  fs::remove(store_.path(a.layer_digests[1]));
  EXPECT_EQ(error_of([&] {
              write_docker_archive(store_, {{a.manifest, {"a:1"}}}, out);
            }).code(),
            Code::kNotFound);
  EXPECT_EQ(error_of([&] {
              write_oci_archive(store_, {{a.manifest, {"a:1"}}}, out);
            }).code(),
            Code::kNotFound);
  EXPECT_EQ(std::distance(fs::directory_iterator(out.parent_path()), {}), 0);
}

TEST_F(ArchiveTest, DockerArchiveChecksDiffIdsWhileDecompressing) {
  // A store whose config lies about a compressed layer: the archive must not be written.
  const auto a = testing::put_image(store_);
  json config = json::parse(store_.read(a.config_digest));
  config["rootfs"]["diff_ids"][0] = sha256_digest("not the layer");
  const std::string config_bytes = config.dump();
  json manifest = json::parse(store_.read(a.manifest.digest));
  manifest["config"]["digest"] = store_.put(config_bytes);
  manifest["config"]["size"] = config_bytes.size();
  const std::string manifest_bytes = manifest.dump();
  const Descriptor d = testing::put_blob(store_, media::kOciManifest, manifest_bytes);
  const fs::path out = dir_ / "out" / "x.tar";
  fs::create_directories(out.parent_path());
  EXPECT_EQ(error_of([&] {
              write_docker_archive(store_, {{d, {"a:1"}}}, out);
            }).code(),
            Code::kDataLoss);
  EXPECT_EQ(std::distance(fs::directory_iterator(out.parent_path()), {}), 0);
}

TEST_F(ArchiveTest, OciArchiveRoundTripKeepsBlobsAsStored) {
  const auto a = testing::put_image(store_, {.layers = {{{"a", "1"}}, {{"b", "2"}}}});
  const auto z = testing::put_image(store_, {.compression = Compression::kZstd});
  // A multi-platform index of which one child is absent (a single-platform pull).
  const auto absent = testing::put_image(store_, {.labels = {{"arch", "arm64"}}});
  json idx = {{"schemaVersion", 2},
              {"mediaType", media::kOciIndex},
              {"manifests", {to_json(z.manifest), to_json(absent.manifest)}}};
  idx["manifests"][0]["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  idx["manifests"][1]["platform"] = {{"os", "linux"}, {"architecture", "arm64"}};
  const std::string idx_bytes = idx.dump();
  const Descriptor index = testing::put_blob(store_, media::kOciIndex, idx_bytes);
  fs::remove(store_.path(absent.manifest.digest));

  const fs::path out = dir_ / "images.oci.tar";
  write_oci_archive(store_, {{a.manifest, {"quay.io/team/app:v1", "alpine"}}, {index, {"multi:2"}}},
                    out);
  const auto files = testing::tar_files(out);
  EXPECT_EQ(files.at("blobs/sha256/" + hex(a.layer_digests[0])),
            store_.read(a.layer_digests[0], 1 << 20));  // gzip blob as stored
  EXPECT_FALSE(files.contains("blobs/sha256/" + hex(absent.manifest.digest)));
  const json index_json = json::parse(files.at("index.json"));
  ASSERT_EQ(index_json["manifests"].size(), 3u);
  EXPECT_EQ(index_json["manifests"][0]["annotations"]["io.containerd.image.name"],
            "quay.io/team/app:v1");
  EXPECT_EQ(index_json["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"], "v1");
  EXPECT_EQ(index_json["manifests"][1]["annotations"]["io.containerd.image.name"],
            "docker.io/library/alpine:latest");
  const json docker_manifest = json::parse(files.at("manifest.json"));
  ASSERT_EQ(docker_manifest.size(), 1u);  // only the single-platform image
  EXPECT_EQ(docker_manifest[0]["RepoTags"],
            json({"quay.io/team/app:v1", "docker.io/library/alpine:latest"}));

  TempDir extracted;
  testing::extract(out, extracted.path());
  EXPECT_THAT(testing::oci_layout_problems(extracted.path()), IsEmpty());

  TempDir other;
  Store copy(other / "store");
  const ImportResult r = import_archive(copy, out);
  EXPECT_EQ(r.format, ArchiveFormat::kOciLayout);
  ASSERT_EQ(r.images.size(), 2u);
  EXPECT_EQ(r.images[0].manifest.digest, a.manifest.digest);
  EXPECT_EQ(r.images[0].config_digest, a.config_digest);
  EXPECT_THAT(r.images[0].names,
              ElementsAre("quay.io/team/app:v1", "docker.io/library/alpine:latest"));
  EXPECT_EQ(r.images[1].manifest.digest, index.digest);
  EXPECT_EQ(copy.resolve("multi:2")->digest, index.digest);
  EXPECT_EQ(copy.resolve("alpine")->digest, a.manifest.digest);
  EXPECT_TRUE(copy.verify().clean());  // an absent index child is allowed
  EXPECT_FALSE(copy.has(absent.manifest.digest));
}

TEST_F(ArchiveTest, OciArchiveNamesFollowPodmanForTagOnlyRefNames) {
  const auto a = testing::put_image(store_);
  // podman writes the full name into ref.name, Docker only the tag.
  TarBuilder b;
  b.file("oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  for (const auto& d : {a.manifest.digest, a.config_digest, a.layer_digests[0]}) {
    b.file("blobs/sha256/" + hex(d), store_.read(d, 1 << 20));
  }
  json full = to_json(a.manifest);
  full["annotations"] = {{"org.opencontainers.image.ref.name", "localhost/tmp/app:latest"}};
  json tag_only = to_json(a.manifest);
  tag_only["annotations"] = {{"org.opencontainers.image.ref.name", "v1"}};
  b.file("index.json",
         json{{"schemaVersion", 2}, {"manifests", {full, tag_only, to_json(a.manifest)}}}.dump());
  TempDir other;
  Store copy(other / "store");
  const ImportResult r = import_archive(copy, write("podman.tar", b.finish()));
  ASSERT_EQ(r.images.size(), 1u);
  EXPECT_THAT(r.images[0].names, ElementsAre("localhost/tmp/app:latest", "localhost/v1:latest"));
}

TEST_F(ArchiveTest, DiskFullWhileWritingLeavesNoFile) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const auto a =
      testing::put_image(store_, {.layers = {{{"big", testing::random_bytes(2 << 20, 11)}}}});
  const fs::path out_dir = dir_ / "small";
  fs::create_directories(out_dir);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(10);
    if (::mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(11);
    if (::mount("tmpfs", out_dir.c_str(), "tmpfs", 0, "size=512k") != 0) ::_exit(12);
    int rc = 0;
    for (const bool oci : {false, true}) {
      try {
        if (oci) {
          write_oci_archive(store_, {{a.manifest, {"a:1"}}}, out_dir / "a.tar");
        } else {
          write_docker_archive(store_, {{a.manifest, {"a:1"}}}, out_dir / "a.tar");
        }
        rc = 1;
      } catch (const Error& e) {
        if (e.code() != Code::kResourceExhausted) rc = 2;
        if (std::distance(fs::directory_iterator(out_dir), {}) != 0) rc = 3;
      }
    }
    ::_exit(rc);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) >= 10) GTEST_SKIP() << "cannot mount here, step " << WEXITSTATUS(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no error, 2: wrong code, 3: file left behind";
}

TEST_F(ArchiveTest, MembersOverTheSizeLimitsAreRefused) {
  const Parts p = make_parts({{{"a", std::string(100000, 'a')}}});
  const std::string tar =
      TarBuilder()
          .file("c.json", p.config)
          .file("l.tar.gz", testing::gzip(std::string(4 << 20, '\0')))
          .file(
              "manifest.json",
              json::array({{{"Config", "c.json"}, {"RepoTags", {"a:1"}}, {"Layers", {"l.tar.gz"}}}})
                  .dump())
          .finish();
  ImportOptions options;
  options.layer_limits = {.max_ratio = 10, .ratio_floor = 1 << 16};
  const Error e = error_of([&] { import(tar, options); });
  EXPECT_EQ(e.code(), Code::kInvalidArgument);
  EXPECT_THAT(e.what(), HasSubstr("size bomb"));
  options = {};
  options.max_metadata_size = 10;
  EXPECT_THAT(error_of([&] { import(tar, options); }).what(), HasSubstr("larger than 10 bytes"));
}

// The fuzz seeds (tests/fuzz/oci_tar/corpus, made by make_corpus.py) are what they claim to be:
// 0x-* load, 1x-* are refused. Keeps the corpus useful as the reader changes.
TEST(ArchiveCorpus, SeedsLoadOrAreRefusedAsNamed) {
  const fs::path corpus = fs::path(STOWAGE_SOURCE_DIR) / "tests" / "fuzz" / "oci_tar" / "corpus";
  ASSERT_TRUE(fs::is_directory(corpus));
  int seen = 0;
  for (const auto& seed : fs::directory_iterator(corpus)) {
    const std::string name = seed.path().filename().string();
    SCOPED_TRACE(name);
    ++seen;
    TempDir dir;
    Store store(dir / "store");
    ImportOptions options;
    options.limits.max_ratio = 100;
    options.limits.ratio_floor = 1 << 20;
    if (name.starts_with("0")) {
      EXPECT_FALSE(import_archive(store, seed.path(), options).images.empty());
      EXPECT_TRUE(store.verify().clean());
    } else {
      EXPECT_THROW(import_archive(store, seed.path(), options), Error);
    }
  }
  EXPECT_GE(seen, 10);
}

}  // namespace
}  // namespace stowage::oci
