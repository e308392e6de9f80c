// cri::Client's own gRPC calls (HTTP/2 by libnghttp2) against a server built with the gRPC
// library itself, on a unix socket: what containerd in cri_containerd_test does not show on
// demand — responses of many MiB and over the limit, requests larger than the peer's first flow
// window, a status with a percent-encoded message, a server that never answers (deadline), a
// cancelled pull seen by the server, concurrent calls, and no server at all.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "base/error.h"
#include "cri/api.grpc.pb.h"
#include "cri/client.h"

namespace stowage::cri {
namespace {

namespace fs = std::filesystem;
namespace v1 = ::runtime::v1;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr int kManyImages = 40'000;

std::string image_id(int i) {
  return fmt::format("sha256:{:064x}", i);
}

class Images final : public v1::ImageService::Service {
 public:
  std::atomic<bool> pull_cancelled{false};
  std::atomic<int> status_calls{0};

  grpc::Status ListImages(grpc::ServerContext*, const v1::ListImagesRequest* request,
                          v1::ListImagesResponse* response) override {
    const int n = request->filter().image().image() == "few" ? 3 : kManyImages;
    for (int i = 0; i < n; ++i) {
      auto* image = response->add_images();
      image->set_id(image_id(i));
      image->add_repo_tags(fmt::format("registry.example/team/app-{}:v{}", i, i % 7));
      image->add_repo_digests(fmt::format("registry.example/team/app-{}@{}", i, image_id(i)));
      image->set_size(static_cast<std::uint64_t>(i) * 1000);
    }
    return grpc::Status::OK;
  }

  grpc::Status ImageStatus(grpc::ServerContext*, const v1::ImageStatusRequest* request,
                           v1::ImageStatusResponse* response) override {
    ++status_calls;
    const std::string& name = request->image().image();
    if (name == "missing") {
      return {grpc::StatusCode::NOT_FOUND, "image \"missing:1\" not found: 100% caf\xC3\xA9"};
    }
    response->mutable_image()->set_id(name);
    response->mutable_image()->add_repo_tags(name);
    return grpc::Status::OK;
  }

  grpc::Status PullImage(grpc::ServerContext* context, const v1::PullImageRequest* request,
                         v1::PullImageResponse* response) override {
    if (request->image().image() == "block") {
      while (!context->IsCancelled()) {
        std::this_thread::sleep_for(10ms);
      }
      pull_cancelled = true;
      return grpc::Status::CANCELLED;
    }
    // Echo what arrived, so the test sees the whole large request made it.
    response->set_image_ref(
        fmt::format("{}:{}", request->image().image(), request->auth().registry_token().size()));
    return grpc::Status::OK;
  }
};

class Runtime final : public v1::RuntimeService::Service {
 public:
  grpc::Status Version(grpc::ServerContext* context, const v1::VersionRequest*,
                       v1::VersionResponse* response) override {
    if (hang) {
      while (!context->IsCancelled()) {
        std::this_thread::sleep_for(10ms);
      }
      return grpc::Status::CANCELLED;
    }
    response->set_version("0.1.0");
    response->set_runtime_name("grpc-test-server");
    response->set_runtime_version("1.0");
    response->set_runtime_api_version("v1");
    return grpc::Status::OK;
  }
  std::atomic<bool> hang{false};
};

class CriGrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("stowage-cri-grpc-{}", ::getpid());
    fs::create_directories(dir_);
    socket_ = (dir_ / "cri.sock").string();
    grpc::ServerBuilder builder;
    builder.AddListeningPort("unix:" + socket_, grpc::InsecureServerCredentials());
    builder.RegisterService(&images_);
    builder.RegisterService(&runtime_);
    builder.SetMaxReceiveMessageSize(64 << 20);
    builder.SetMaxSendMessageSize(64 << 20);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }

  void TearDown() override {
    server_->Shutdown(std::chrono::system_clock::now() + 2s);
    fs::remove_all(dir_);
  }

  Client client(std::chrono::milliseconds timeout = 10s, int max_receive = 16 << 20) const {
    return Client(ClientOptions{.endpoint = "unix://" + socket_,
                                .timeout = timeout,
                                .pull_timeout = 20s,
                                .max_receive_message_bytes = max_receive});
  }

  template <typename F>
  static std::optional<Error> error_of(F&& f) {
    try {
      f();
    } catch (const Error& e) {
      return e;
    }
    return std::nullopt;
  }

  fs::path dir_;
  std::string socket_;
  Images images_;
  Runtime runtime_;
  std::unique_ptr<grpc::Server> server_;
};

TEST_F(CriGrpcServerTest, VersionAnswers) {
  const VersionInfo v = client().version();
  EXPECT_EQ(v.runtime_name, "grpc-test-server");
  EXPECT_EQ(v.runtime_api_version, "v1");
}

TEST_F(CriGrpcServerTest, ResponseOfManyMegabytesArrivesWhole) {
  const std::vector<Image> all = client().list_images();
  ASSERT_EQ(all.size(), static_cast<std::size_t>(kManyImages));
  for (const int i : {0, 1, kManyImages / 2, kManyImages - 1}) {
    const auto& image = all[static_cast<std::size_t>(i)];
    EXPECT_EQ(image.id, image_id(i));
    ASSERT_EQ(image.repo_tags.size(), 1u);
    EXPECT_EQ(image.repo_tags[0], fmt::format("registry.example/team/app-{}:v{}", i, i % 7));
    EXPECT_EQ(image.size, static_cast<std::uint64_t>(i) * 1000);
  }
  EXPECT_EQ(client().list_images("few").size(), 3u);
}

TEST_F(CriGrpcServerTest, ResponseOverTheLimitIsResourceExhausted) {
  const auto error = error_of([&] { client(10s, 1 << 20).list_images(); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kResourceExhausted) << error->what();
  EXPECT_THAT(error->what(), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(error->what(), HasSubstr("CRI ListImages at " + socket_));
  // The same client size works for a small answer afterwards.
  EXPECT_EQ(client(10s, 1 << 20).list_images("few").size(), 3u);
}

TEST_F(CriGrpcServerTest, RequestLargerThanTheFirstFlowWindowIsSentWhole) {
  AuthConfig auth;
  auth.registry_token = std::string(300'000, 't');
  EXPECT_EQ(client().pull_image("registry.example/app:1", auth), "registry.example/app:1:300000");
}

TEST_F(CriGrpcServerTest, StatusAndDecodedMessageReachTheCaller) {
  const auto error = error_of([&] { client().image_status("missing"); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kNotFound);
  EXPECT_THAT(error->what(), HasSubstr("CRI ImageStatus missing at " + socket_ +
                                       ": NOT_FOUND: "
                                       "image \"missing:1\" not found: 100% caf\xC3\xA9"));
}

TEST_F(CriGrpcServerTest, ServerThatNeverAnswersHitsTheDeadline) {
  runtime_.hang = true;
  const auto start = std::chrono::steady_clock::now();
  const auto error = error_of([&] { client(400ms).version(); });
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kDeadlineExceeded) << error->what();
  EXPECT_THAT(error->what(), HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_GE(elapsed, 400ms);
  EXPECT_LT(elapsed, 3s);
}

TEST_F(CriGrpcServerTest, StopCancelsAPullAndTheServerSeesIt) {
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    stop.request_stop();
  });
  const auto start = std::chrono::steady_clock::now();
  const auto error =
      error_of([&] { client().pull_image("block", std::nullopt, std::nullopt, stop.get_token()); });
  const auto elapsed = std::chrono::steady_clock::now() - start;
  stopper.join();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kUnavailable) << error->what();
  EXPECT_THAT(error->what(), HasSubstr("CANCELLED"));
  EXPECT_LT(elapsed, 3s);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (!images_.pull_cancelled && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(images_.pull_cancelled) << "the server never saw the cancellation";
}

TEST_F(CriGrpcServerTest, ConcurrentCallsFromOneClient) {
  const Client shared = client();
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const std::string name = fmt::format("img-{}-{}", t, i);
        const auto image = shared.image_status(name);
        if (image && image->id == name) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_EQ(images_.status_calls.load(), 200);
}

TEST_F(CriGrpcServerTest, NoServerIsUnavailable) {
  server_->Shutdown(std::chrono::system_clock::now());
  fs::remove(socket_);
  const auto error = error_of([&] { client().version(); });
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code(), Code::kUnavailable) << error->what();
  EXPECT_THAT(error->what(), HasSubstr("No such file or directory"));
}

}  // namespace
}  // namespace stowage::cri
