// stowctl: Stowage's image and registries engine by hand. main() only wires subcommands and
// turns errors into one clear line and a non-zero exit code.
#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>

#include "base/error.h"
#include "common.h"
#include "cri_cmds.h"
#include "image_cmds.h"
#include "registries_cmd.h"
#include "remote_cmds.h"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed connection is an error to report, not a death
  CLI::App app{"stowctl: manage how nodes reach container registries and which images they hold",
               "stowctl"};
  app.set_version_flag("--version", "stowctl 0.1.0");
  app.require_subcommand(1);
  app.footer("Run 'stowctl COMMAND --help' for more on a command.");
  int exit_code = 0;
  stowctl::GlobalOptions globals;
  stowctl::add_global_flags(app, globals);
  app.fallthrough();  // global flags after the command name work too
  app.parse_complete_callback([&app, &globals] {
    stowctl::apply_log_level(globals);
    for (const CLI::App* sub : app.get_subcommands()) {
      stowctl::check_cri_command(globals, sub->get_name());
    }
  });
  stowctl::add_remote_commands(app, globals, &exit_code);
  stowctl::add_image_commands(app, globals, &exit_code);
  stowctl::add_registries_command(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  } catch (const stowage::Error& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
  return exit_code;
}
