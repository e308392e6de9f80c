// A small program that runs the agent's Exporter once, so that tests can kill it with SIGKILL in
// the middle of an export and run it again. Prints the export's status as JSON on stdout; exits
// 0 when the file is Written, 1 otherwise.
//   agent_export_helper <export-dir> <store-dir> <host-root> <file> <docker-archive|oci-archive>
//                       <name:tag> <digest>
#include <cstdio>
#include <iostream>
#include <string>

#include "base/clock.h"
#include "http/client.h"
#include "node-agent/exporter.h"
#include "reference/reference.h"

int main(int argc, char** argv) {
  if (argc != 8) {
    std::cerr << "usage: agent_export_helper <export-dir> <store-dir> <host-root> <file> "
                 "<format> <name:tag> <digest>\n";
    return 2;
  }
  try {
    using namespace stowage;
    http::Client transport(http::ClientOptions{.proxy = ""});
    agent::Exporter exporter({.export_dir = argv[1],
                              .store_dir = argv[2],
                              .host_root = argv[3],
                              .transport = &transport},
                             real_clock());
    const std::string name = argv[6];
    const std::string digest = argv[7];
    api::NodeExport exp;
    exp.file_name = argv[4];
    exp.format = std::string(argv[5]) == "oci-archive" ? api::ExportFormat::kOciArchive
                                                       : api::ExportFormat::kDockerArchive;
    exp.images = {Reference::parse(name).name() + "@" + digest};
    const agent::ExportResult r =
        exporter.run(exp, {{.name = name, .digest = digest, .state = api::ImageState::kPresent}});
    std::cout << api::node_cache_status_to_json(api::NodeCacheStatus{.exports = {r.status}})
                     .at("exports")
                     .at(0)
                     .dump()
              << std::endl;
    return r.status.state == api::ExportState::kWritten ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "agent_export_helper: " << e.what() << "\n";
    return 3;
  }
}
