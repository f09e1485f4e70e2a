// The waddle command line: serve, adduser, deluser, passwd, did, check config, check s2s,
// --version,
// --help.
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <termios.h>
#include <unistd.h>
#include <cstdlib>

#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "app/server/server.h"
#include "core/config.h"
#include "core/jid.h"
#include "core/version.h"
#include "identity/credential.h"
#include "s2s/s2s.h"
#include "sasl/scram.h"
#include "storage/storage.h"

namespace {

using namespace waddle;

constexpr const char* kUsage = R"(Usage: waddle [--config FILE] COMMAND [ARGS]

Commands:
  serve                  run the server (without --config: domain localhost, data in ./data,
                         a self-signed certificate generated on first start, clients on 5222)
  adduser JID            create an account (password from a prompt or --password-file FILE)
  deluser JID            delete an account with its roster and offline messages
  passwd JID             set an account's password (prompt or --password-file FILE)
  did JID [DID|-]        show, link (did:plc:..., did:web:...) or unlink (-) the account's
                         ATProto DID, carried in its federated identity credentials
  check config           validate the configuration file and exit
  check s2s DOMAIN       diagnose federation with DOMAIN as this server would: DNS, TCP,
                         TLS version, certificate validity, authentication offered and used

Options:
  --config FILE          TOML configuration (every option: config/waddle.example.toml)
  --password-file FILE   read the password from the first line of FILE
  --version              print the version and exit
  --help                 print this help and exit
)";

struct Args {
  std::optional<std::string> config;
  std::optional<std::string> password_file;
  std::vector<std::string> positional;
};

int usage_error(const std::string& msg) {
  std::cerr << "waddle: " << msg << "\n\n" << kUsage;
  return 2;
}

core::Config load(const Args& args) {
  return args.config ? core::load_config(*args.config) : core::default_config();
}

std::optional<std::string> read_password(const Args& args) {
  std::string pw;
  if (args.password_file) {
    std::ifstream in(*args.password_file);
    if (!in || !std::getline(in, pw)) {
      std::cerr << "waddle: cannot read a password from " << *args.password_file << "\n";
      return std::nullopt;
    }
  } else {
    bool tty = isatty(STDIN_FILENO);
    termios old{};
    if (tty) {
      tcgetattr(STDIN_FILENO, &old);
      termios quiet = old;
      quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
      tcsetattr(STDIN_FILENO, TCSANOW, &quiet);
      std::cerr << "Password: " << std::flush;
    }
    std::getline(std::cin, pw);
    std::string again = pw;
    if (tty) {
      std::cerr << "\nAgain: " << std::flush;
      std::getline(std::cin, again);
      tcsetattr(STDIN_FILENO, TCSANOW, &old);
      std::cerr << "\n";
    }
    if (again != pw) {
      std::cerr << "waddle: the passwords differ\n";
      return std::nullopt;
    }
  }
  auto prepped = core::saslprep(pw);
  if (!prepped || prepped->empty()) {
    std::cerr << "waddle: the password is empty or contains forbidden characters\n";
    return std::nullopt;
  }
  return prepped;
}

// Parses an account JID that must be bare and on a served domain.
std::optional<core::Jid> account_jid(const core::Config& config, const std::string& text) {
  auto jid = core::Jid::parse(text);
  if (!jid || jid->local().empty() || !jid->is_bare()) {
    std::cerr << "waddle: '" << text << "' is not an account JID (user@domain)\n";
    return std::nullopt;
  }
  const auto& d = config.server.domains;
  if (std::find(d.begin(), d.end(), jid->domain()) == d.end()) {
    std::cerr << "waddle: " << jid->domain() << " is not a domain served by this server\n";
    return std::nullopt;
  }
  return jid;
}

int account_command(const std::string& cmd, const Args& args) {
  if (args.positional.size() != 2) return usage_error(cmd + " takes one JID");
  auto config = load(args);
  auto jid = account_jid(config, args.positional[1]);
  if (!jid) return 1;
  auto st = storage::open_sqlite(config.storage_path());
  if (cmd == "deluser") {
    if (!st->delete_account(jid->domain(), jid->local())) {
      std::cerr << "waddle: no account " << jid->str() << "\n";
      return 1;
    }
    std::cout << "deleted " << jid->str() << "\n";
    return 0;
  }
  if (cmd == "adduser" && st->get_account(jid->domain(), jid->local())) {
    std::cerr << "waddle: " << jid->str() << " already exists\n";
    return 1;
  }
  if (cmd == "passwd" && !st->get_account(jid->domain(), jid->local())) {
    std::cerr << "waddle: no account " << jid->str() << "\n";
    return 1;
  }
  auto pw = read_password(args);
  if (!pw) return 1;
  auto sha1 = sasl::make_credentials(sasl::ScramHash::kSha1, *pw);
  auto sha256 = sasl::make_credentials(sasl::ScramHash::kSha256, *pw);
  if (cmd == "adduser") {
    if (!st->create_account({jid->domain(), jid->local(), sha1, sha256, {}})) {
      std::cerr << "waddle: " << jid->str() << " already exists\n";
      return 1;
    }
    std::cout << "created " << jid->str() << "\n";
  } else {
    st->set_credentials(jid->domain(), jid->local(), sha1, sha256);
    std::cout << "password changed for " << jid->str() << "\n";
  }
  return 0;
}

int did_command(const Args& args) {
  if (args.positional.size() != 2 && args.positional.size() != 3)
    return usage_error("did takes a JID and optionally a DID or -");
  auto config = load(args);
  auto jid = account_jid(config, args.positional[1]);
  if (!jid) return 1;
  auto st = storage::open_sqlite(config.storage_path());
  auto acct = st->get_account(jid->domain(), jid->local());
  if (!acct) {
    std::cerr << "waddle: no account " << jid->str() << "\n";
    return 1;
  }
  if (args.positional.size() == 2) {
    std::cout << (acct->did.empty() ? "(none)" : acct->did) << "\n";
    return 0;
  }
  std::string did = args.positional[2] == "-" ? std::string() : args.positional[2];
  if (!did.empty() && !identity::valid_did(did)) {
    std::cerr << "waddle: '" << did << "' is not a DID (did:METHOD:IDENTIFIER)\n";
    return 1;
  }
  st->set_did(jid->domain(), jid->local(), did);
  if (did.empty())
    std::cout << "unlinked the DID of " << jid->str() << "\n";
  else
    std::cout << "linked " << jid->str() << " to " << did << "\n";
  return 0;
}

int serve(const Args& args) {
  auto config = load(args);
  spdlog::set_level(spdlog::level::from_str(config.server.log_level));
  return app::run_server(config);
}

int run(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (a == "--version" || a == "-V") {
      std::cout << "waddle " << WADDLE_VERSION << "\n";
      return 0;
    }
    if (a == "--config" || a == "-c" || a == "--password-file") {
      if (i + 1 >= argc) return usage_error(a + " needs a value");
      (a == "--password-file" ? args.password_file : args.config) = argv[++i];
      continue;
    }
    if (a.rfind("--config=", 0) == 0) {
      args.config = a.substr(9);
      continue;
    }
    if (a.rfind("--password-file=", 0) == 0) {
      args.password_file = a.substr(16);
      continue;
    }
    if (a.size() > 1 && a[0] == '-') return usage_error("unknown option " + a);
    args.positional.push_back(a);
  }
  if (args.positional.empty()) return usage_error("no command given");
  const std::string& cmd = args.positional[0];
  if (cmd == "serve") return serve(args);
  if (cmd == "adduser" || cmd == "deluser" || cmd == "passwd") return account_command(cmd, args);
  if (cmd == "did") return did_command(args);
  if (cmd == "check" && args.positional.size() == 3 && args.positional[1] == "s2s") {
    auto config = load(args);
    spdlog::set_level(spdlog::level::warn);
    auto remote = core::nameprep_domain(args.positional[2]);
    if (!remote) return usage_error("'" + args.positional[2] + "' is not a domain");
    auto report = s2s::check_remote(config, config.server.domains.front(), *remote);
    for (const auto& line : report.lines) std::cout << line << "\n";
    return report.ok ? 0 : 1;
  }
  if (cmd == "check") {
    if (args.positional.size() != 2 || args.positional[1] != "config")
      return usage_error("usage: waddle check config | waddle check s2s DOMAIN");
    auto config = load(args);
    for (const auto& w : config.warnings) std::cerr << "waddle: warning: " << w << "\n";
    std::cout << (config.source.empty() ? std::string("embedded default") : config.source)
              << ": configuration OK (" << config.server.domains.size() << " domain"
              << (config.server.domains.size() == 1 ? "" : "s") << ")\n";
    return 0;
  }
  return usage_error("unknown command " + cmd);
}

}  // namespace

// The syslog priority of a log line, as the journal reads it from stderr.
class JournalPriority : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    int priority = 6;  // info
    switch (msg.level) {
      case spdlog::level::trace:
      case spdlog::level::debug:
        priority = 7;
        break;
      case spdlog::level::warn:
        priority = 4;
        break;
      case spdlog::level::err:
        priority = 3;
        break;
      case spdlog::level::critical:
        priority = 2;
        break;
      default:
        break;
    }
    const char text[3] = {'<', static_cast<char>('0' + priority), '>'};
    dest.append(text, text + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<JournalPriority>();
  }
};

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("waddle");
  spdlog::set_default_logger(logger);
  if (std::getenv("JOURNAL_STREAM")) {
    // Under systemd, stderr is the journal's: it stamps the time itself and reads each line's
    // priority from a "<N>" prefix (sd-daemon(3)), so `journalctl -p warning` works.
    auto formatter = std::make_unique<spdlog::pattern_formatter>();
    formatter->add_flag<JournalPriority>('*').set_pattern("%*%v");
    spdlog::set_formatter(std::move(formatter));
  } else {
    spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  }
  try {
    return run(argc, argv);
  } catch (const core::ConfigError& e) {
    std::cerr << "waddle: configuration error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "waddle: " << e.what() << "\n";
    return 1;
  }
}
