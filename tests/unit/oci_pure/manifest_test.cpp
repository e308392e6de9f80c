#include "oci/manifest.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <variant>

#include "base/error.h"

namespace stowage::oci {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kD1 = "sha256:" + std::string(64, 'a');
const std::string kD2 = "sha256:" + std::string(64, 'b');
const std::string kD3 = "sha256:" + std::string(64, 'c');

std::string oci_manifest_json() {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         kD1 + R"(","size":7023},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
         kD2 +
         R"(","size":32654,"annotations":{"org.opencontainers.image.title":"l0"}},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":")" +
         kD3 +
         R"(","size":16724,"urls":["https://cdn.example.com/l1"]}],
    "subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         kD1 +
         R"(","size":7682},
    "annotations":{"com.example.key1":"value1"},
    "unknownField":{"ignored":true}})";
}

std::string docker_manifest_json() {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
    "config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":1469,"digest":")" +
         kD1 + R"("},
    "layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":2812,"digest":")" +
         kD2 + R"("}]})";
}

std::string index_json(std::string_view media_type = "application/vnd.oci.image.index.v1+json") {
  return R"({"schemaVersion":2,"mediaType":")" + std::string(media_type) + R"(","manifests":[
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         kD1 + R"(","size":7143,"platform":{"architecture":"ppc64le","os":"linux"}},
    {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
         kD2 +
         R"(","size":7682,"platform":{"architecture":"amd64","os":"linux","os.features":["sse4"]}}],
    "annotations":{"com.example.key1":"value1"}})";
}

std::string error_of(auto&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Code::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return {};
}

TEST(Manifest, ParsesOciManifestWithEveryField) {
  const ImageManifest m = parse_image_manifest(oci_manifest_json());
  EXPECT_EQ(m.schema_version, 2);
  EXPECT_EQ(m.media_type, media::kOciManifest);
  EXPECT_EQ(m.config.media_type, media::kOciConfig);
  EXPECT_EQ(m.config.digest, kD1);
  EXPECT_EQ(m.config.size, 7023);
  ASSERT_EQ(m.layers.size(), 2u);
  EXPECT_EQ(m.layers[0].annotations.at("org.opencontainers.image.title"), "l0");
  EXPECT_EQ(m.layers[1].media_type, media::kOciLayerZstd);
  EXPECT_EQ(m.layers[1].urls, std::vector<std::string>{"https://cdn.example.com/l1"});
  ASSERT_TRUE(m.subject.has_value());
  EXPECT_EQ(m.subject->size, 7682);
  EXPECT_EQ(m.annotations.at("com.example.key1"), "value1");
}

TEST(Manifest, ParsesDockerSchema2) {
  const ImageManifest m = parse_image_manifest(docker_manifest_json());
  EXPECT_EQ(m.media_type, media::kDockerManifest);
  EXPECT_EQ(m.config.media_type, media::kDockerConfig);
  ASSERT_EQ(m.layers.size(), 1u);
  EXPECT_EQ(m.layers[0].media_type, media::kDockerLayerGzip);
  EXPECT_FALSE(m.subject.has_value());
}

TEST(Manifest, ParsesIndexAndManifestList) {
  const ImageIndex oci = parse_image_index(index_json());
  EXPECT_EQ(oci.media_type, media::kOciIndex);
  ASSERT_EQ(oci.manifests.size(), 2u);
  ASSERT_TRUE(oci.manifests[1].platform.has_value());
  EXPECT_EQ(oci.manifests[1].platform->architecture, "amd64");
  EXPECT_EQ(oci.manifests[1].platform->os_features, std::vector<std::string>{"sse4"});
  const ImageIndex docker = parse_image_index(index_json(media::kDockerManifestList));
  EXPECT_EQ(docker.media_type, media::kDockerManifestList);
}

TEST(Manifest, MediaTypeComesFromBodyThenContentTypeThenFields) {
  const std::string no_type = R"({"schemaVersion":2,"config":{"mediaType":"x","digest":")" + kD1 +
                              R"(","size":1},"layers":[]})";
  const std::string no_type_index = R"({"schemaVersion":2,"manifests":[]})";
  struct Case {
    std::string body;
    std::string content_type;
    std::string want;
  };
  const Case cases[] = {
      {oci_manifest_json(), "", std::string(media::kOciManifest)},
      {oci_manifest_json(), "application/vnd.oci.image.manifest.v1+json; charset=utf-8",
       std::string(media::kOciManifest)},
      {no_type, std::string(media::kDockerManifest), std::string(media::kDockerManifest)},
      {no_type, "Application/VND.Docker.Distribution.Manifest.V2+JSON",
       std::string(media::kDockerManifest)},
      {no_type, "", std::string(media::kOciManifest)},
      {no_type, "application/json", std::string(media::kOciManifest)},
      {no_type, "text/plain; charset=utf-8", std::string(media::kOciManifest)},
      {no_type, "application/octet-stream", std::string(media::kOciManifest)},
      {no_type_index, "", std::string(media::kOciIndex)},
      {no_type_index, std::string(media::kDockerManifestList),
       std::string(media::kDockerManifestList)},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.content_type + " " + c.body.substr(0, 40));
    const auto parsed = parse_manifest(c.body, c.content_type);
    const std::string got = std::visit([](const auto& m) { return m.media_type; }, parsed);
    EXPECT_EQ(got, c.want);
  }
  EXPECT_EQ(detect_manifest_kind(no_type_index), ManifestKind::kImageIndex);
  EXPECT_EQ(detect_manifest_kind(no_type, media::kDockerManifest), ManifestKind::kImageManifest);
}

TEST(Manifest, RefusesBodyTypeDifferentFromContentType) {
  const std::string msg = error_of(
      [] { parse_image_manifest(oci_manifest_json(), std::string(media::kDockerManifest)); });
  EXPECT_THAT(msg, HasSubstr("differs from the Content-Type"));
  EXPECT_THAT(msg, HasSubstr(std::string(media::kDockerManifest)));
}

TEST(Manifest, RefusesSchema1Clearly) {
  const std::string signed_body =
      R"({"schemaVersion":1,"name":"a/b","tag":"t","architecture":"amd64","fsLayers":[],"history":[],"signatures":[]})";
  const std::string unsigned_body = R"({"name":"a/b","fsLayers":[{"blobSum":")" + kD1 + R"("}]})";
  struct Case {
    std::string body;
    std::string content_type;
  };
  const Case cases[] = {
      {signed_body, ""},
      {signed_body, std::string(media::kDockerManifestV1Signed)},
      {unsigned_body, ""},
      {unsigned_body, std::string(media::kDockerManifestV1)},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"})",
       ""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    const std::string msg = error_of([&] { parse_manifest(c.body, c.content_type); });
    EXPECT_THAT(msg, HasSubstr("schema 1 manifests"));
    EXPECT_THAT(msg, HasSubstr("not supported"));
  }
}

TEST(Manifest, ValidationErrorsNameTheField) {
  const std::string cfg = R"("config":{"mediaType":"m","digest":")" + kD1 + R"(","size":1})";
  const std::string mt = R"("mediaType":"application/vnd.oci.image.manifest.v1+json")";
  struct Case {
    std::string body;
    std::string want;
  };
  const Case cases[] = {
      {"[]", "manifest: must be a JSON object"},
      {"\"x\"", "manifest: must be a JSON object"},
      {R"({"mediaType":5})", "\"mediaType\" must be a string"},
      {"{" + mt + "," + cfg + R"(,"layers":[]})", "missing \"schemaVersion\""},
      {R"({"schemaVersion":"2",)" + mt + "," + cfg + R"(,"layers":[]})",
       "\"schemaVersion\" must be an integer"},
      {R"({"schemaVersion":3,)" + mt + "," + cfg + R"(,"layers":[]})",
       "unsupported schemaVersion 3"},
      {R"({"schemaVersion":2,)" + mt + R"(,"layers":[]})", "manifest: missing \"config\""},
      {R"({"schemaVersion":2,)" + mt + "," + cfg + "}", "manifest: missing \"layers\""},
      {R"({"schemaVersion":2,)" + mt + "," + cfg + R"(,"layers":{}})", "\"layers\" must be a list"},
      {R"({"schemaVersion":2,)" + mt + "," + cfg + R"(,"layers":[{"mediaType":"m","size":1}]})",
       "manifest: layers[0]: descriptor: missing \"digest\""},
      {R"({"schemaVersion":2,)" + mt + "," + cfg + R"(,"layers":[)" + cfg.substr(9) +
           R"(,{"mediaType":"m","digest":"sha256:zz","size":1}]})",
       "manifest: layers[1]: descriptor: invalid digest"},
      {R"({"schemaVersion":2,)" + mt + R"(,"config":{"mediaType":"m","digest":")" + kD1 +
           R"(","size":-1},"layers":[]})",
       "manifest: config: descriptor: \"size\" must not be negative"},
      {R"({"schemaVersion":2,)" + mt + "," + cfg + R"(,"layers":[],"annotations":{"a":1}})",
       "\"annotations\" value of \"a\" must be a string"},
      {R"({"schemaVersion":2,)" + mt + "," + cfg + R"(,"layers":[],"subject":{}})",
       "manifest: subject: descriptor: missing \"mediaType\""},
      {R"({"schemaVersion":2,)" + mt + "," + cfg + R"(,"layers":[],"artifactType":[]})",
       "\"artifactType\" must be a string"},
      {R"({"schemaVersion":2,"mediaType":"application/vnd.oci.artifact.manifest.v1+json"})",
       "unsupported media type \"application/vnd.oci.artifact.manifest.v1+json\""},
      {R"({"schemaVersion":2})", "neither \"manifests\" nor \"layers\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    EXPECT_THAT(error_of([&] { parse_manifest(c.body); }), HasSubstr(c.want));
  }
}

TEST(Manifest, IndexValidationErrorsNameTheField) {
  const std::string mt = R"("mediaType":"application/vnd.oci.image.index.v1+json")";
  struct Case {
    std::string body;
    std::string want;
  };
  const Case cases[] = {
      {"{" + mt + R"(,"schemaVersion":2})", "index: missing \"manifests\""},
      {"{" + mt + R"(,"schemaVersion":2,"manifests":{}})", "index: \"manifests\" must be a list"},
      {"{" + mt + R"(,"schemaVersion":2,"manifests":[1]})",
       "index: manifests[0]: descriptor: must be an object"},
      {"{" + mt + R"(,"schemaVersion":2,"manifests":[{"mediaType":"m","digest":")" + kD1 +
           R"(","size":1,"platform":{"os":"linux"}}]})",
       "index: manifests[0]: descriptor: platform: missing \"architecture\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    EXPECT_THAT(error_of([&] { parse_image_index(c.body); }), HasSubstr(c.want));
  }
}

TEST(Manifest, RefusesTheOtherKind) {
  EXPECT_THAT(error_of([] { parse_image_manifest(index_json()); }),
              HasSubstr("expected an image manifest, got an image index"));
  EXPECT_THAT(error_of([] { parse_image_index(oci_manifest_json()); }),
              HasSubstr("expected an image index, got an image manifest"));
  EXPECT_TRUE(std::holds_alternative<ImageIndex>(parse_manifest(index_json())));
  EXPECT_TRUE(std::holds_alternative<ImageManifest>(parse_manifest(docker_manifest_json())));
}

TEST(Manifest, EnforcesSizeLimit) {
  std::string body = docker_manifest_json();
  body.append(kMaxManifestBytes - body.size(), ' ');
  EXPECT_NO_THROW(parse_image_manifest(body));
  body.push_back(' ');
  EXPECT_THAT(error_of([&] { parse_image_manifest(body); }),
              HasSubstr("4194305 bytes, more than the 4194304 allowed"));
  std::string config(kMaxConfigBytes + 1, ' ');
  EXPECT_THAT(error_of([&] { parse_image_config(config); }), HasSubstr("more than the"));
}

TEST(Manifest, RefusesDeepNestingAndBadJsonWithoutEchoingIt) {
  const std::string deep = std::string(100, '[') + std::string(100, ']');
  EXPECT_THAT(error_of([&] { parse_manifest(deep); }), HasSubstr("nested deeper than 64"));
  const std::string broken = R"({"schemaVersion":2,"mediaType":"secret-looking-text)";
  const std::string msg = error_of([&] { parse_manifest(broken); });
  EXPECT_THAT(msg, HasSubstr("invalid JSON at byte"));
  EXPECT_THAT(msg, Not(HasSubstr("secret-looking")));
  EXPECT_THAT(error_of([] { parse_manifest("{\"a\":\"\xff\"}"); }), HasSubstr("invalid JSON"));
  // nlohmann reports number overflow as out_of_range, not parse_error (found by fuzzing).
  EXPECT_THAT(error_of([] { parse_manifest(R"({"schemaVersion":1.5e901})"); }),
              HasSubstr("a number is out of range"));
  EXPECT_THAT(error_of([] { parse_image_config(R"({"x":-1e999})"); }),
              HasSubstr("a number is out of range"));
}

TEST(Manifest, JsonNestingGuardSkipsStrings) {
  EXPECT_FALSE(json_nesting_exceeds(R"({"a":"[[[[[[[[[[","b":"\"[[["})", 2));
  EXPECT_TRUE(json_nesting_exceeds("[[[", 2));
  EXPECT_FALSE(json_nesting_exceeds("[[]][[]]", 2));
}

TEST(Manifest, SerializesDeterministicallyInSpecOrder) {
  ImageManifest m;
  m.media_type = media::kOciManifest;
  m.config = Descriptor{std::string(media::kOciConfig), kD1, 7, {}, {}, {}, {}};
  Descriptor layer{std::string(media::kOciLayerGzip), kD2, 42, {"https://u"}, {{"k", "v"}}, {}, {}};
  m.layers = {layer};
  m.annotations = {{"z", "1"}, {"a", "2"}};
  m.artifact_type = "application/x-thing";
  m.subject = Descriptor{std::string(media::kOciManifest), kD3, 9, {}, {}, {}, {}};
  const std::string want =
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
      R"("artifactType":"application/x-thing",)"
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
      kD1 +
      R"(","size":7},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
      kD2 +
      R"(","size":42,"urls":["https://u"],"annotations":{"k":"v"}}],)"
      R"("subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
      kD3 + R"(","size":9},"annotations":{"a":"2","z":"1"}})";
  EXPECT_EQ(serialize(m), want);
  EXPECT_EQ(parse_image_manifest(serialize(m)), m);
}

TEST(Manifest, SerializesIndexWithPlatforms) {
  const ImageIndex x = parse_image_index(index_json());
  const std::string s = serialize(x);
  EXPECT_THAT(
      s, HasSubstr(R"("platform":{"architecture":"amd64","os":"linux","os.features":["sse4"]})"));
  EXPECT_EQ(parse_image_index(s), x);
  EXPECT_EQ(serialize(parse_image_index(s)), s);
}

TEST(Manifest, RoundTripsEveryFixture) {
  for (const std::string& body : {oci_manifest_json(), docker_manifest_json(), index_json(),
                                  index_json(media::kDockerManifestList)}) {
    const auto first = parse_manifest(body);
    const std::string bytes = std::visit([](const auto& m) { return serialize(m); }, first);
    EXPECT_EQ(parse_manifest(bytes), first);
  }
}

TEST(Manifest, DigestIsOfTheExactBytes) {
  EXPECT_EQ(manifest_digest(""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(manifest_digest("{}"),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
  const std::string body = docker_manifest_json();
  EXPECT_NE(manifest_digest(body), manifest_digest(body + "\n"));
  EXPECT_EQ(manifest_digest(body), manifest_digest(std::string(body)));
}

TEST(Manifest, NormalizesMediaTypes) {
  EXPECT_EQ(normalize_media_type("application/json"), "application/json");
  EXPECT_EQ(normalize_media_type(" Application/JSON ; charset=utf-8"), "application/json");
  EXPECT_EQ(normalize_media_type(""), "");
  EXPECT_EQ(normalize_media_type(";x"), "");
}

// --- Image config ---

const char* kDockerConfig = R"({
  "architecture": "amd64",
  "config": {
    "Hostname": "", "User": "app", "AttachStdin": false,
    "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
    "Env": ["PATH=/usr/local/sbin:/usr/bin", "NGINX_VERSION=1.25.3"],
    "Cmd": ["nginx", "-g", "daemon off;"],
    "Entrypoint": ["/docker-entrypoint.sh"],
    "Volumes": {"/data": {}},
    "WorkingDir": "/srv",
    "Labels": {"maintainer": "NGINX Docker Maintainers"},
    "StopSignal": "SIGQUIT",
    "ArgsEscaped": true,
    "Healthcheck": {"Test": ["CMD", "true"], "Interval": 30000000000},
    "OnBuild": null
  },
  "container": "3a4e...",
  "created": "2023-11-01T00:00:00.123456789Z",
  "docker_version": "20.10.23",
  "history": [
    {"created": "2023-11-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:x in / "},
    {"created": "2023-11-01T00:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"bash\"]", "empty_layer": true, "comment": "c", "author": "me"}
  ],
  "os": "linux",
  "rootfs": {"type": "layers", "diff_ids": ["sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]},
  "variant": "v3",
  "os.version": "10.0.17763.1",
  "os.features": ["win32k"]
})";

TEST(ImageConfig, ParsesDockerConfigAndKeepsUnknownFields) {
  const ImageConfig c = parse_image_config(kDockerConfig);
  EXPECT_EQ(c.architecture, "amd64");
  EXPECT_EQ(c.os, "linux");
  EXPECT_EQ(c.variant, "v3");
  EXPECT_EQ(c.os_version, "10.0.17763.1");
  EXPECT_EQ(c.os_features, std::vector<std::string>{"win32k"});
  EXPECT_EQ(c.created, "2023-11-01T00:00:00.123456789Z");
  ASSERT_TRUE(c.config.has_value());
  const ContainerConfig& cc = *c.config;
  EXPECT_EQ(cc.user, "app");
  EXPECT_EQ(cc.exposed_ports, (std::set<std::string>{"443/tcp", "80/tcp"}));
  EXPECT_EQ(cc.env.size(), 2u);
  EXPECT_EQ(cc.cmd, (std::vector<std::string>{"nginx", "-g", "daemon off;"}));
  EXPECT_EQ(cc.entrypoint, std::vector<std::string>{"/docker-entrypoint.sh"});
  EXPECT_EQ(cc.volumes, std::set<std::string>{"/data"});
  EXPECT_EQ(cc.working_dir, "/srv");
  EXPECT_EQ(cc.labels.at("maintainer"), "NGINX Docker Maintainers");
  EXPECT_EQ(cc.stop_signal, "SIGQUIT");
  EXPECT_EQ(cc.args_escaped, true);
  EXPECT_EQ(cc.extra.at("Healthcheck"), R"({"Interval":30000000000,"Test":["CMD","true"]})");
  EXPECT_EQ(cc.extra.at("OnBuild"), "null");
  EXPECT_EQ(cc.extra.at("Hostname"), "\"\"");
  EXPECT_EQ(c.extra.at("docker_version"), "\"20.10.23\"");
  EXPECT_EQ(c.extra.at("container"), "\"3a4e...\"");
  EXPECT_EQ(c.rootfs_type, "layers");
  ASSERT_EQ(c.diff_ids.size(), 1u);
  ASSERT_EQ(c.history.size(), 2u);
  EXPECT_FALSE(c.history[0].empty_layer);
  EXPECT_TRUE(c.history[1].empty_layer);
  EXPECT_EQ(c.history[1].comment, "c");
  EXPECT_EQ(c.history[1].author, "me");
  const Platform p = c.platform();
  EXPECT_EQ(format_platform(p), "linux/amd64/v3");
}

TEST(ImageConfig, RoundTripsThroughSerialize) {
  const ImageConfig c = parse_image_config(kDockerConfig);
  const std::string s = serialize(c);
  EXPECT_EQ(parse_image_config(s), c);
  EXPECT_EQ(serialize(parse_image_config(s)), s);
  // Known fields first in spec order, unknown ones after, sorted.
  EXPECT_LT(s.find("\"created\""), s.find("\"architecture\""));
  EXPECT_LT(s.find("\"rootfs\""), s.find("\"container\""));
  EXPECT_LT(s.find("\"container\""), s.find("\"docker_version\""));
  EXPECT_THAT(s, HasSubstr(R"("ExposedPorts":{"443/tcp":{},"80/tcp":{}})"));
}

TEST(ImageConfig, AcceptsDockerStringCommandsAndNulls) {
  const ImageConfig c = parse_image_config(
      R"({"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
          "config":{"Cmd":"echo hi","Entrypoint":null,"Env":null,"Labels":null,"ExposedPorts":null}})");
  ASSERT_TRUE(c.config.has_value());
  EXPECT_EQ(c.config->cmd, std::vector<std::string>{"echo hi"});
  EXPECT_FALSE(c.config->entrypoint.has_value());
  EXPECT_TRUE(c.config->env.empty());
  EXPECT_TRUE(c.config->labels.empty());
  const ImageConfig minimal = parse_image_config(
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers"},"config":null})");
  EXPECT_FALSE(minimal.config.has_value());
  EXPECT_TRUE(minimal.diff_ids.empty());
  EXPECT_EQ(serialize(minimal),
            R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})");
}

TEST(ImageConfig, ValidationErrorsNameTheField) {
  const std::string rootfs = R"("rootfs":{"type":"layers","diff_ids":[]})";
  struct Case {
    std::string body;
    std::string want;
  };
  const Case cases[] = {
      {"[]", "config: must be a JSON object"},
      {R"({"os":"linux",)" + rootfs + "}", "config: missing \"architecture\""},
      {R"({"architecture":"","os":"linux",)" + rootfs + "}", "\"architecture\" must not be empty"},
      {R"({"architecture":"amd64",)" + rootfs + "}", "config: missing \"os\""},
      {R"({"architecture":"amd64","os":7,)" + rootfs + "}", "\"os\" must be a string"},
      {R"({"architecture":"amd64","os":"linux"})", "config: missing \"rootfs\""},
      {R"({"architecture":"amd64","os":"linux","rootfs":[]})", "config: rootfs: must be an object"},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"diff_ids":[]}})",
       "config: rootfs: missing \"type\""},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["nope"]}})",
       "config: rootfs: diff_ids[0] is not a valid digest"},
      {R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":"x"}})",
       "\"diff_ids\" must be a list of strings"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"config":[]})",
       "config: config: must be an object"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"config":{"User":1}})",
       "config: config: \"User\" must be a string"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"config":{"Env":[1]}})",
       "\"Env\" must be a list of strings"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"config":{"Cmd":5}})",
       "\"Cmd\" must be a list of strings"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"config":{"Labels":{"a":1}}})",
       "\"Labels\" value of \"a\" must be a string"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs +
           R"(,"config":{"ExposedPorts":{"80/tcp":1}}})",
       "\"ExposedPorts\" value of \"80/tcp\" must be an object"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"config":{"ArgsEscaped":"y"}})",
       "\"ArgsEscaped\" must be a boolean"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"history":{}})",
       "config: \"history\" must be a list"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"history":[1]})",
       "config: history[0]: must be an object"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs +
           R"(,"history":[{},{"empty_layer":1}]})",
       "config: history[1]: \"empty_layer\" must be a boolean"},
      {R"({"architecture":"amd64","os":"linux",)" + rootfs + R"(,"os.features":"x"})",
       "\"os.features\" must be a list of strings"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    EXPECT_THAT(error_of([&] { parse_image_config(c.body); }), HasSubstr(c.want));
  }
}

TEST(ImageConfig, ExtraFieldsMustBeJsonWhenSerialized) {
  ImageConfig c = parse_image_config(
      R"({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}})");
  c.extra["broken"] = "{";
  EXPECT_THAT(error_of([&] { serialize(c); }), HasSubstr("extra field \"broken\""));
  c.extra = {{"os", "\"ignored\""}};  // a modelled field wins over an extra of the same name
  EXPECT_THAT(serialize(c), HasSubstr(R"("os":"linux")"));
  c.extra.clear();
  c.author = "\xff";
  EXPECT_THAT(error_of([&] { serialize(c); }), HasSubstr("not valid UTF-8"));
}

}  // namespace
}  // namespace stowage::oci
