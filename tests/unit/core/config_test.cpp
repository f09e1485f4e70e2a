// Tests for the TOML configuration loader: mapping, defaults, bounds and error locations.
#include "core/config.h"

#include <gtest/gtest.h>

#include <toml++/toml.h>
#include <unistd.h>
#include <algorithm>
#include <map>

#include <filesystem>
#include <fstream>
#include <string>

namespace waddle::core {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;

const fs::path kExample = fs::path(WADDLE_SOURCE_DIR) / "config" / "waddle.example.toml";

namespace {

// A real self-signed certificate and its key: certificate options must hold PEM data.
constexpr const char* kCertPem = R"(-----BEGIN CERTIFICATE-----
MIIBhTCCASugAwIBAgIUWnBrFK2NDEzky/nUlzP72uowN70wCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMZXhhbXBsZS50ZXN0MCAXDTI2MTEyNTAxNTkxN1oYDzIxMjYx
MTAxMDE1OTE3WjAXMRUwEwYDVQQDDAxleGFtcGxlLnRlc3QwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAAQjgq0n6r7L0gwSaCulVDB792WwF3Wx3eey2e4ium6mWrYB
7pi2XWEphGVsRrkne3v26vdhQvwo34TqDusCMgNHo1MwUTAdBgNVHQ4EFgQUPZ/h
3ddBawHdsBcxYvv4P5b0mh4wHwYDVR0jBBgwFoAUPZ/h3ddBawHdsBcxYvv4P5b0
mh4wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiA6M+NgyOGiD2eX
pRfpMXCM0KT9nxZTi62kM0FrKgXVzAIhAOsYfZUG3BjE6iJuDegLCSGM1z1/EhEq
DxFVjJgao+tU
-----END CERTIFICATE-----
)";
constexpr const char* kKeyPem = R"(-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgkFpru59DpFeNBW+1
iuFvQJf+zJqP3+9W39FU3zGxHX6hRANCAAQjgq0n6r7L0gwSaCulVDB792WwF3Wx
3eey2e4ium6mWrYB7pi2XWEphGVsRrkne3v26vdhQvwo34TqDusCMgNH
-----END PRIVATE KEY-----
)";

}  // namespace

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) /
           (std::string("waddle_config_") + info->name() + "_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    std::ofstream(p) << content;
    return p.string();
  }

  // The message of the ConfigError that parsing `text` as "w.toml" throws.
  static std::string error_of(const std::string& text) {
    try {
      parse_config(text, "w.toml");
    } catch (const ConfigError& e) {
      return e.what();
    }
    ADD_FAILURE() << "no ConfigError for:\n" << text;
    return "";
  }

  fs::path dir_;
};

TEST_F(ConfigTest, Defaults_MatchDocumentedValues) {
  const Config c = default_config();
  EXPECT_EQ(c.source, "");
  EXPECT_EQ(c.server.domains, std::vector<std::string>{"localhost"});
  EXPECT_TRUE(c.server.listen.empty());
  EXPECT_EQ(c.server.log_level, "info");
  EXPECT_EQ(c.server.data_dir, "./data");
  EXPECT_EQ(c.server.shutdown_timeout, seconds(5));
  EXPECT_EQ(c.c2s.port, 5222);
  EXPECT_EQ(c.c2s.limits.max_stanza_size, 256u * 1024);
  EXPECT_EQ(c.s2s.port, 5269);
  EXPECT_EQ(c.s2s.policy, "open");
  EXPECT_EQ(c.s2s.retry.max_retries, 3u);
  EXPECT_FALSE(c.s2s.allow_unverified_dialback);
  EXPECT_TRUE(c.s2s.unverified_dialback_domains.empty());
  EXPECT_EQ(c.s2s.dialback_secret, "");
  EXPECT_EQ(c.s2s.tls_min_version, "1.3");
  EXPECT_FALSE(c.s2s.allow_internal_addresses);
  EXPECT_EQ(c.s2s.connection_rate, 30u);
  EXPECT_EQ(c.s2s.stanza_rate, 2000u);
  EXPECT_EQ(c.s2s.stanza_burst, 10000u);
  EXPECT_EQ(c.s2s.byte_rate, 4u * 1024 * 1024);
  EXPECT_EQ(c.s2s.byte_burst, 20u * 1024 * 1024);
  EXPECT_EQ(c.s2s.disconnect_when_paced_for, milliseconds(0));
  EXPECT_EQ(c.s2s.bandwidth_limit, 0u);
  EXPECT_EQ(c.s2s.max_stanza_size, 512u * 1024);
  EXPECT_EQ(c.s2s.handshake_timeout, seconds(30));
  EXPECT_EQ(c.s2s.queue_size, 1000u);
  EXPECT_EQ(c.s2s.ping_interval, seconds(60));
  EXPECT_EQ(c.c2s.limits.max_write_queue, 4u * 1024 * 1024);
  EXPECT_EQ(c.c2s.limits.write_stall_timeout, seconds(60));
  EXPECT_EQ(c.s2s.max_write_queue, 8u * 1024 * 1024);
  EXPECT_EQ(c.s2s.write_stall_timeout, seconds(60));
  EXPECT_EQ(c.s2s.max_unacked, 10000u);
  EXPECT_EQ(c.s2s.max_unacked_bytes, 16u * 1024 * 1024);
  EXPECT_EQ(c.c2s_write_queue(), 4u * 1024 * 1024);
  EXPECT_EQ(c.s2s_write_queue(), 8u * 1024 * 1024);
  EXPECT_EQ(c.c2s.max_unacked_stanzas, 5000u);
  EXPECT_EQ(c.c2s.max_unacked_bytes, 8u * 1024 * 1024);
  EXPECT_EQ(c.c2s_unacked_bytes(), 8u * 1024 * 1024);
  EXPECT_EQ(c.c2s.csi_queue_size, 256u);
  EXPECT_EQ(c.c2s.csi_queue_bytes, 256u * 1024);
  EXPECT_TRUE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.address, "127.0.0.1");
  EXPECT_EQ(c.metrics.port, 5280);
  EXPECT_EQ(c.metrics.max_domains, 100u);
  EXPECT_EQ(c.storage.backend, "sqlite");
  EXPECT_EQ(c.storage_path(), "./data/waddle.db");
}

TEST_F(ConfigTest, StoragePath_PrefersExplicitPath) {
  Config c = parse_config("[server]\ndata_dir = \"/var/lib/waddle\"\n", "w.toml");
  EXPECT_EQ(c.storage_path(), "/var/lib/waddle/waddle.db");
  c = parse_config("[storage]\npath = \"/srv/w.db\"\n", "w.toml");
  EXPECT_EQ(c.storage_path(), "/srv/w.db");
}

TEST_F(ConfigTest, EmptyFile_GivesDefaults) {
  const Config c = parse_config("", "w.toml");
  const Config d = default_config();
  EXPECT_EQ(c.server.domains, d.server.domains);
  EXPECT_EQ(c.c2s.port, d.c2s.port);
  EXPECT_EQ(c.source, "");
}

TEST_F(ConfigTest, ExampleFile_LoadsAndStatesTheDefaults) {
  const Config c = load_config(kExample.string());
  const Config d = default_config();
  EXPECT_EQ(c.source, kExample.string());
  EXPECT_TRUE(c.warnings.empty()) << c.warnings.front();
  EXPECT_EQ(c.server.domains, d.server.domains);
  EXPECT_EQ(c.server.listen, d.server.listen);
  EXPECT_EQ(c.server.log_level, d.server.log_level);
  EXPECT_EQ(c.server.data_dir, d.server.data_dir);
  EXPECT_EQ(c.server.shutdown_timeout, d.server.shutdown_timeout);
  EXPECT_EQ(c.tls.default_cert.cert, d.tls.default_cert.cert);
  EXPECT_EQ(c.tls.default_cert.key, d.tls.default_cert.key);
  EXPECT_TRUE(c.tls.domains.empty());
  EXPECT_EQ(c.c2s.caps_cache_size, d.c2s.caps_cache_size);
  EXPECT_EQ(c.components.listen, d.components.listen);
  EXPECT_EQ(c.components.port, d.components.port);
  EXPECT_TRUE(c.components.secrets.empty());
  EXPECT_EQ(c.tls.ca_file, d.tls.ca_file);
  EXPECT_EQ(c.tls.c2s_min_version, d.tls.c2s_min_version);
  EXPECT_EQ(c.c2s.enabled, d.c2s.enabled);
  EXPECT_EQ(c.c2s.port, d.c2s.port);
  EXPECT_EQ(c.c2s.direct_tls_port, d.c2s.direct_tls_port);
  EXPECT_EQ(c.c2s.allow_registration, d.c2s.allow_registration);
  EXPECT_EQ(c.c2s.max_auth_failures, d.c2s.max_auth_failures);
  EXPECT_EQ(c.c2s.max_offline_messages, d.c2s.max_offline_messages);
  EXPECT_EQ(c.c2s.max_offline_pending, d.c2s.max_offline_pending);
  EXPECT_EQ(c.c2s.limits.max_stanza_size, d.c2s.limits.max_stanza_size);
  EXPECT_EQ(c.c2s.limits.max_depth, d.c2s.limits.max_depth);
  EXPECT_EQ(c.c2s.limits.max_attributes, d.c2s.limits.max_attributes);
  EXPECT_EQ(c.c2s.limits.max_header_size, d.c2s.limits.max_header_size);
  EXPECT_EQ(c.c2s.limits.handshake_timeout, d.c2s.limits.handshake_timeout);
  EXPECT_EQ(c.c2s.limits.max_write_queue, d.c2s.limits.max_write_queue);
  EXPECT_EQ(c.c2s.limits.write_stall_timeout, d.c2s.limits.write_stall_timeout);
  EXPECT_EQ(c.storage.backend, d.storage.backend);
  EXPECT_EQ(c.storage.path, d.storage.path);
  EXPECT_EQ(c.s2s.enabled, d.s2s.enabled);
  EXPECT_EQ(c.s2s.port, d.s2s.port);
  EXPECT_EQ(c.s2s.cert_path, d.s2s.cert_path);
  EXPECT_EQ(c.s2s.key_path, d.s2s.key_path);
  EXPECT_EQ(c.s2s.connect_timeout, d.s2s.connect_timeout);
  EXPECT_EQ(c.s2s.idle_timeout, d.s2s.idle_timeout);
  EXPECT_EQ(c.s2s.max_connections_per_domain, d.s2s.max_connections_per_domain);
  EXPECT_EQ(c.s2s.max_links, d.s2s.max_links);
  EXPECT_EQ(c.s2s.max_connecting, d.s2s.max_connecting);
  EXPECT_EQ(c.s2s.policy, d.s2s.policy);
  EXPECT_EQ(c.s2s.allowed_domains, d.s2s.allowed_domains);
  EXPECT_EQ(c.s2s.blocked_domains, d.s2s.blocked_domains);
  EXPECT_EQ(c.s2s.retry.max_retries, d.s2s.retry.max_retries);
  EXPECT_EQ(c.s2s.retry.initial_delay, d.s2s.retry.initial_delay);
  EXPECT_EQ(c.s2s.retry.max_delay, d.s2s.retry.max_delay);
  EXPECT_EQ(c.s2s.retry.backoff_multiplier, d.s2s.retry.backoff_multiplier);
  EXPECT_EQ(c.s2s.allow_unverified_dialback, d.s2s.allow_unverified_dialback);
  EXPECT_EQ(c.s2s.unverified_dialback_domains, d.s2s.unverified_dialback_domains);
  EXPECT_EQ(c.s2s.dialback_secret, d.s2s.dialback_secret);
  EXPECT_EQ(c.s2s.tls_min_version, d.s2s.tls_min_version);
  EXPECT_EQ(c.s2s.allow_internal_addresses, d.s2s.allow_internal_addresses);
  EXPECT_EQ(c.s2s.connection_rate, d.s2s.connection_rate);
  EXPECT_EQ(c.s2s.stanza_rate, d.s2s.stanza_rate);
  EXPECT_EQ(c.s2s.stanza_burst, d.s2s.stanza_burst);
  EXPECT_EQ(c.s2s.byte_rate, d.s2s.byte_rate);
  EXPECT_EQ(c.s2s.byte_burst, d.s2s.byte_burst);
  EXPECT_EQ(c.s2s.disconnect_when_paced_for, d.s2s.disconnect_when_paced_for);
  EXPECT_EQ(c.s2s.bandwidth_limit, d.s2s.bandwidth_limit);
  EXPECT_EQ(c.s2s.max_stanza_size, d.s2s.max_stanza_size);
  EXPECT_EQ(c.s2s.handshake_timeout, d.s2s.handshake_timeout);
  EXPECT_EQ(c.s2s.queue_size, d.s2s.queue_size);
  EXPECT_EQ(c.s2s.ping_interval, d.s2s.ping_interval);
  EXPECT_EQ(c.s2s.max_write_queue, d.s2s.max_write_queue);
  EXPECT_EQ(c.s2s.write_stall_timeout, d.s2s.write_stall_timeout);
  EXPECT_EQ(c.s2s.max_unacked, d.s2s.max_unacked);
  EXPECT_EQ(c.s2s.max_unacked_bytes, d.s2s.max_unacked_bytes);
  EXPECT_EQ(c.dns.nameservers, d.dns.nameservers);
  EXPECT_EQ(c.metrics.enabled, d.metrics.enabled);
  EXPECT_EQ(c.metrics.address, d.metrics.address);
  EXPECT_EQ(c.metrics.port, d.metrics.port);
  EXPECT_EQ(c.metrics.max_domains, d.metrics.max_domains);
  EXPECT_EQ(c.muc.enabled, d.muc.enabled);
  EXPECT_EQ(c.muc.subdomain, d.muc.subdomain);
  EXPECT_EQ(c.muc.room_creation, d.muc.room_creation);
  EXPECT_EQ(c.muc.max_occupants, d.muc.max_occupants);
  EXPECT_EQ(c.muc.history_size, d.muc.history_size);
  EXPECT_EQ(c.muc.history_bytes, d.muc.history_bytes);
  EXPECT_EQ(c.muc.rejoin_history_interval, d.muc.rejoin_history_interval);
  EXPECT_EQ(c.muc.invitations_per_message, d.muc.invitations_per_message);
  EXPECT_EQ(c.muc.invitations_per_minute, d.muc.invitations_per_minute);
  EXPECT_EQ(c.muc.max_affiliations_by_invitation, d.muc.max_affiliations_by_invitation);
  EXPECT_EQ(c.muc.require_credential, d.muc.require_credential);
  EXPECT_EQ(c.muc.verify_with_home_server, d.muc.verify_with_home_server);
  EXPECT_EQ(c.muc.verify_timeout, d.muc.verify_timeout);
  EXPECT_EQ(c.muc.archive_by_default, d.muc.archive_by_default);
  EXPECT_EQ(c.identity.enabled, d.identity.enabled);
  EXPECT_EQ(c.identity.credential_lifetime, d.identity.credential_lifetime);
  EXPECT_EQ(c.identity.key_file, d.identity.key_file);
  EXPECT_EQ(c.pep.enabled, d.pep.enabled);
  EXPECT_EQ(c.pep.max_item_bytes, d.pep.max_item_bytes);
  EXPECT_EQ(c.pep.max_items, d.pep.max_items);
  EXPECT_EQ(c.pep.max_nodes, d.pep.max_nodes);
  EXPECT_EQ(c.contact.abuse, d.contact.abuse);
  EXPECT_EQ(c.contact.support, d.contact.support);
  EXPECT_EQ(c.turn.host, d.turn.host);
  EXPECT_EQ(c.turn.port, d.turn.port);
  EXPECT_EQ(c.turn.tls_port, d.turn.tls_port);
  EXPECT_EQ(c.turn.tcp, d.turn.tcp);
  EXPECT_EQ(c.turn.secret, d.turn.secret);
  EXPECT_EQ(c.turn.ttl, d.turn.ttl);
  EXPECT_EQ(c.web.enabled, d.web.enabled);
  EXPECT_EQ(c.web.port, d.web.port);
  EXPECT_EQ(c.web.plain_address, d.web.plain_address);
  EXPECT_EQ(c.web.plain_port, d.web.plain_port);
  EXPECT_EQ(c.web.websocket_path, d.web.websocket_path);
  EXPECT_EQ(c.web.allowed_origins, d.web.allowed_origins);
  EXPECT_EQ(c.web.public_url, d.web.public_url);
  EXPECT_EQ(c.web.client_path, d.web.client_path);
  EXPECT_EQ(c.web.client_dir, d.web.client_dir);
  EXPECT_EQ(c.upload.enabled, d.upload.enabled);
  EXPECT_EQ(c.upload.path, d.upload.path);
  EXPECT_EQ(c.upload.max_file_size, d.upload.max_file_size);
  EXPECT_EQ(c.upload.quota_per_user, d.upload.quota_per_user);
  EXPECT_EQ(c.upload.max_total_size, d.upload.max_total_size);
  EXPECT_EQ(c.upload.expire_after, d.upload.expire_after);
  EXPECT_EQ(c.upload.slot_timeout, d.upload.slot_timeout);
  EXPECT_EQ(c.upload.min_upload_rate, d.upload.min_upload_rate);
  EXPECT_EQ(c.upload.allow_remote, d.upload.allow_remote);
  EXPECT_EQ(c.upload.cleanup_interval, d.upload.cleanup_interval);
}

TEST_F(ConfigTest, Push_DefaultsValuesAndBounds) {
  Config c = parse_config("", "w.toml");
  EXPECT_TRUE(c.push.enabled);
  EXPECT_EQ(c.push.max_registrations_per_account, 5u);
  EXPECT_FALSE(c.push.allow_body);
  EXPECT_EQ(c.push.notify_timeout, Duration(std::chrono::seconds(30)));
  c = parse_config(
      "[push]\nenabled = false\nmax_registrations_per_account = 1\nallow_body = true\n"
      "notify_timeout = \"5s\"\n",
      "w.toml");
  EXPECT_FALSE(c.push.enabled);
  EXPECT_EQ(c.push.max_registrations_per_account, 1u);
  EXPECT_TRUE(c.push.allow_body);
  EXPECT_EQ(c.push.notify_timeout, Duration(std::chrono::seconds(5)));
  EXPECT_NE(error_of("[push]\nmax_registrations_per_account = 0\n")
                .find("push.max_registrations_per_account"),
            std::string::npos);
  EXPECT_NE(error_of("[push]\nmax_registrations_per_account = 101\n")
                .find("push.max_registrations_per_account"),
            std::string::npos);
  EXPECT_NE(error_of("[push]\ninclude_body = true\n").find("push.include_body: unknown key"),
            std::string::npos);
}

TEST_F(ConfigTest, Pep_DefaultsValuesAndBounds) {
  Config c = parse_config("", "w.toml");
  EXPECT_TRUE(c.pep.enabled);
  EXPECT_EQ(c.pep.max_item_bytes, 196'608u);
  EXPECT_EQ(c.pep.max_items, 256u);
  EXPECT_EQ(c.pep.max_nodes, 256u);
  c = parse_config("[pep]\nenabled = false\nmax_item_bytes = 1024\nmax_items = 3\nmax_nodes = 9\n",
                   "w.toml");
  EXPECT_FALSE(c.pep.enabled);
  EXPECT_EQ(c.pep.max_item_bytes, 1024u);
  EXPECT_EQ(c.pep.max_items, 3u);
  EXPECT_EQ(c.pep.max_nodes, 9u);
  EXPECT_NE(error_of("[pep]\nmax_items = 0\n").find("pep.max_items"), std::string::npos);
  EXPECT_NE(error_of("[pep]\nmax_item_bytes = 10\n").find("pep.max_item_bytes"), std::string::npos);
  EXPECT_NE(error_of("[pep]\nmax_nodes = 100001\n").find("pep.max_nodes"), std::string::npos);
}

TEST_F(ConfigTest, ContactAndTurn_ValuesAndChecks) {
  Config c = parse_config(
      "[contact]\nabuse = [\"mailto:abuse@a.test\", \"xmpp:admin@a.test\"]\n"
      "[turn]\nhost = \"turn.a.test\"\nport = 3479\ntls_port = 5349\ntcp = true\n"
      "secret = \"s3cret\"\nttl = \"2h\"\n",
      "w.toml");
  EXPECT_EQ(c.contact.abuse,
            (std::vector<std::string>{"mailto:abuse@a.test", "xmpp:admin@a.test"}));
  EXPECT_TRUE(c.contact.admin.empty());
  EXPECT_EQ(c.turn.host, "turn.a.test");
  EXPECT_EQ(c.turn.port, 3479);
  EXPECT_EQ(c.turn.tls_port, 5349);
  EXPECT_TRUE(c.turn.tcp);
  EXPECT_EQ(c.turn.secret, "s3cret");
  EXPECT_EQ(c.turn.ttl, Duration(std::chrono::hours(2)));
  EXPECT_NE(error_of("[contact]\nabuse = [\"not a uri\"]\n").find("contact.abuse[0]"),
            std::string::npos);
  EXPECT_NE(error_of("[contact]\nowner = []\n").find("contact.owner: unknown key"),
            std::string::npos);
  EXPECT_NE(error_of("[turn]\nport = 0\n").find("turn.port"), std::string::npos);
}

TEST_F(ConfigTest, Web_ValuesAndChecks) {
  Config c = parse_config(
      "[web]\nport = 8443\nplain_address = \"::1\"\nplain_port = 8080\n"
      "websocket_path = \"/ws\"\nallowed_origins = [\"https://app.a.test\", \"*\"]\n"
      "public_url = \"https://chat.a.test/\"\n",
      "w.toml");
  EXPECT_EQ(c.web.port, 8443);
  EXPECT_EQ(c.web.plain_address, "::1");
  EXPECT_EQ(c.web.plain_port, 8080);
  EXPECT_EQ(c.web.websocket_path, "/ws");
  EXPECT_EQ(c.web.allowed_origins, (std::vector<std::string>{"https://app.a.test", "*"}));
  EXPECT_EQ(c.web.public_url, "https://chat.a.test/");
  EXPECT_NE(error_of("[web]\nplain_address = \"192.0.2.1\"\n").find("web.plain_address"),
            std::string::npos);
  EXPECT_NE(error_of("[web]\nwebsocket_path = \"ws\"\n").find("web.websocket_path"),
            std::string::npos);
  EXPECT_NE(error_of("[web]\nallowed_origins = [\"chat.a.test\"]\n").find("web.allowed_origins[0]"),
            std::string::npos);
  EXPECT_NE(error_of("[web]\npublic_url = \"wss://chat.a.test\"\n").find("web.public_url"),
            std::string::npos);
  EXPECT_NE(error_of("[web]\nport = 5222\n").find("web.port"), std::string::npos);
  EXPECT_NE(error_of("[web]\nclient_path = \"/chat\"\n").find("web.client_path"),
            std::string::npos);
  EXPECT_NE(error_of("[web]\nclient_path = \"/upload/x/\"\n").find("web.client_path"),
            std::string::npos);
  EXPECT_NE(error_of("[web]\nplain_port = 5280\n").find("web.plain_port"), std::string::npos);
}

TEST_F(ConfigTest, Upload_ValuesAndChecks) {
  Config c = parse_config(
      "[server]\ndata_dir = \"/var/lib/w\"\n"
      "[upload]\nmax_file_size = \"5MiB\"\nquota_per_user = 0\nexpire_after = 0\n"
      "min_upload_rate = \"1KiB\"\nallow_remote = true\n",
      "w.toml");
  EXPECT_EQ(c.upload.max_file_size, 5u * 1024 * 1024);
  EXPECT_EQ(c.upload.quota_per_user, 0u);
  EXPECT_EQ(c.upload.expire_after.count(), 0);
  EXPECT_EQ(c.upload.min_upload_rate, 1024u);
  EXPECT_TRUE(c.upload.allow_remote);
  EXPECT_EQ(c.upload_path(), "/var/lib/w/uploads");
  EXPECT_NE(error_of("[upload]\nmax_file_size = 0\n").find("upload.max_file_size"),
            std::string::npos);
  EXPECT_NE(error_of("[upload]\nslot_timeout = \"0s\"\n").find("upload.slot_timeout"),
            std::string::npos);
}

TEST_F(ConfigTest, Muc_DomainsAndChecks) {
  Config c = parse_config("[server]\ndomains = [\"a.example\", \"b.example\"]\n", "w.toml");
  EXPECT_EQ(c.muc_domain("a.example"), "conference.a.example");
  EXPECT_EQ(c.hosted_domains(),
            (std::vector<std::string>{"a.example", "b.example", "conference.a.example",
                                      "conference.b.example"}));
  c = parse_config("[muc]\nenabled = false\n", "w.toml");
  EXPECT_EQ(c.muc_domain("localhost"), "");
  EXPECT_EQ(c.hosted_domains(), std::vector<std::string>{"localhost"});
  c = parse_config(
      "[muc]\nsubdomain = \"rooms\"\nroom_creation = \"anyone\"\n"
      "require_credential = true\nverify_timeout = \"3s\"\narchive_by_default = false\n"
      "rejoin_history_interval = 0\ninvitations_per_message = 2\n"
      "invitations_per_minute = 5\nmax_affiliations_by_invitation = 0\n"
      "[identity]\nenabled = false\ncredential_lifetime = \"1h\"\n"
      "key_file = \"/k.pem\"\n",
      "w.toml");
  EXPECT_EQ(c.muc_domain("localhost"), "rooms.localhost");
  EXPECT_EQ(c.muc.room_creation, "anyone");
  EXPECT_TRUE(c.muc.require_credential);
  EXPECT_EQ(c.muc.verify_timeout, Duration(std::chrono::seconds(3)));
  EXPECT_FALSE(c.muc.archive_by_default);
  EXPECT_EQ(c.muc.rejoin_history_interval, Duration(0));
  EXPECT_EQ(c.muc.invitations_per_message, 2u);
  EXPECT_EQ(c.muc.invitations_per_minute, 5u);
  EXPECT_EQ(c.muc.max_affiliations_by_invitation, 0u);
  EXPECT_FALSE(c.identity.enabled);
  EXPECT_EQ(c.identity.credential_lifetime, Duration(std::chrono::hours(1)));
  EXPECT_EQ(c.identity_key_path(), "/k.pem");
  EXPECT_EQ(error_of("[muc]\nsubdomain = \"a.b\"\n"),
            "w.toml:2:1: muc.subdomain: expected one lowercase DNS label, got \"a.b\"");
  EXPECT_EQ(error_of("[muc]\nsubdomain = \"Rooms\"\n"),
            "w.toml:2:1: muc.subdomain: expected one lowercase DNS label, got \"Rooms\"");
  EXPECT_NE(error_of("[muc]\nroom_creation = \"admins\"\n").find("muc.room_creation"),
            std::string::npos);
  EXPECT_NE(error_of("[server]\ndomains = [\"x.example\", \"conference.x.example\"]\n")
                .find("also listed in server.domains"),
            std::string::npos);
}

TEST_F(ConfigTest, ExampleFile_MentionsEveryOption) {
  const toml::table t = toml::parse_file(kExample.string());
  for (const char* key : {"server.domains",
                          "server.listen",
                          "server.log_level",
                          "server.data_dir",
                          "server.shutdown_timeout",
                          "tls.ca_file",
                          "tls.c2s_min_version",
                          "c2s.enabled",
                          "c2s.port",
                          "c2s.direct_tls_port",
                          "c2s.allow_registration",
                          "c2s.max_auth_failures",
                          "c2s.max_offline_messages",
                          "c2s.max_offline_bytes",
                          "c2s.max_offline_pending",
                          "c2s.resume_timeout",
                          "c2s.max_unacked_stanzas",
                          "c2s.max_unacked_bytes",
                          "c2s.csi_queue_size",
                          "c2s.csi_queue_bytes",
                          "c2s.caps_cache_size",
                          "mam.enabled",
                          "mam.default",
                          "mam.retention",
                          "mam.max_messages_per_account",
                          "mam.max_page_size",
                          "mam.cleanup_interval",
                          "mam.max_pending",
                          "push.enabled",
                          "push.max_registrations_per_account",
                          "push.allow_body",
                          "push.notify_timeout",
                          "pep.enabled",
                          "pep.max_item_bytes",
                          "pep.max_items",
                          "pep.max_nodes",
                          "upload.enabled",
                          "upload.path",
                          "upload.max_file_size",
                          "upload.quota_per_user",
                          "upload.max_total_size",
                          "upload.expire_after",
                          "upload.slot_timeout",
                          "upload.min_upload_rate",
                          "upload.allow_remote",
                          "upload.cleanup_interval",
                          "web.enabled",
                          "web.port",
                          "web.plain_address",
                          "web.plain_port",
                          "web.websocket_path",
                          "web.allowed_origins",
                          "web.public_url",
                          "web.client_path",
                          "web.client_dir",
                          "contact.abuse",
                          "contact.admin",
                          "contact.feedback",
                          "contact.sales",
                          "contact.security",
                          "contact.status",
                          "contact.support",
                          "turn.host",
                          "turn.port",
                          "turn.tls_port",
                          "turn.tcp",
                          "turn.secret",
                          "turn.ttl",
                          "components.listen",
                          "components.port",
                          "c2s.limits.max_stanza_size",
                          "c2s.limits.max_depth",
                          "c2s.limits.max_attributes",
                          "c2s.limits.max_header_size",
                          "c2s.limits.handshake_timeout",
                          "c2s.limits.max_write_queue",
                          "c2s.limits.write_stall_timeout",
                          "storage.backend",
                          "storage.path",
                          "s2s.enabled",
                          "s2s.port",
                          "s2s.connect_timeout",
                          "s2s.idle_timeout",
                          "s2s.max_connections_per_domain",
                          "s2s.max_links",
                          "s2s.max_connecting",
                          "s2s.policy",
                          "s2s.allowed_domains",
                          "s2s.blocked_domains",
                          "s2s.allow_unverified_dialback",
                          "s2s.unverified_dialback_domains",
                          "s2s.dialback_secret",
                          "s2s.tls_min_version",
                          "s2s.allow_internal_addresses",
                          "s2s.connection_rate",
                          "s2s.stanza_rate",
                          "s2s.stanza_burst",
                          "s2s.byte_rate",
                          "s2s.byte_burst",
                          "s2s.disconnect_when_paced_for",
                          "s2s.bandwidth_limit",
                          "s2s.max_stanza_size",
                          "s2s.handshake_timeout",
                          "s2s.queue_size",
                          "s2s.ping_interval",
                          "s2s.max_write_queue",
                          "s2s.write_stall_timeout",
                          "s2s.max_unacked",
                          "s2s.max_unacked_bytes",
                          "s2s.retry.max_retries",
                          "s2s.retry.initial_delay",
                          "s2s.retry.max_delay",
                          "s2s.retry.backoff_multiplier",
                          "dns.nameservers",
                          "metrics.enabled",
                          "metrics.address",
                          "metrics.port",
                          "metrics.max_domains",
                          "muc.enabled",
                          "muc.subdomain",
                          "muc.room_creation",
                          "muc.max_occupants",
                          "muc.history_size",
                          "muc.history_bytes",
                          "muc.rejoin_history_interval",
                          "muc.invitations_per_message",
                          "muc.invitations_per_minute",
                          "muc.max_affiliations_by_invitation",
                          "muc.require_credential",
                          "muc.verify_with_home_server",
                          "muc.verify_timeout",
                          "muc.archive_by_default",
                          "identity.enabled",
                          "identity.credential_lifetime",
                          "identity.key_file"}) {
    EXPECT_TRUE(t.at_path(key)) << key;
  }
  // Certificate paths cannot be active (the files do not exist) but must be shown.
  std::ifstream in(kExample);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* line :
       {"# cert = ", "# key = ", "# [tls.domains.", "# cert_path = ", "# key_path = "}) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
}

TEST_F(ConfigTest, FullFile_MapsEveryKey) {
  const std::string cert = write("c.pem", kCertPem);
  const std::string key = write("k.pem", kKeyPem);
  const std::string text = R"(
[server]
domains = ["Example.ORG", "münchen.example."]
listen = ["::", "127.0.0.1"]
log_level = "debug"
data_dir = "/var/lib/waddle"
shutdown_timeout = "250ms"

[tls]
cert = "CERT"
key = "KEY"
ca_file = "CERT"
c2s_min_version = "1.3"

[tls.domains."Conference.Example.org"]
cert = "CERT"
key = "KEY"

[c2s]
enabled = false
port = 15222
direct_tls_port = 15223
allow_registration = true
max_auth_failures = 5
max_offline_messages = 0
max_offline_pending = "2MiB"

[c2s.limits]
max_stanza_size = 1048576
max_depth = 32
max_attributes = 16
max_header_size = 8192
handshake_timeout = "1m"

[storage]
backend = "sqlite"
path = "/srv/waddle.db"

[s2s]
enabled = false
port = 15269
cert_path = "CERT"
key_path = "KEY"
connect_timeout = "5s"
idle_timeout = "1h"
max_connections_per_domain = 2
max_links = 50
max_connecting = 7
policy = "allowlist"
allowed_domains = ["waddle.social", "Trusted.Example"]
blocked_domains = ["spam.example"]
allow_unverified_dialback = true
unverified_dialback_domains = ["Legacy.Example", "münchen.example"]
dialback_secret = "0123456789abcdef0123"
tls_min_version = "1.2"
allow_internal_addresses = true
connection_rate = 0
stanza_rate = 1000000
stanza_burst = 3
byte_rate = "1MiB"
byte_burst = 65536
disconnect_when_paced_for = "10m"
bandwidth_limit = 1048576
max_stanza_size = 65536
handshake_timeout = "15s"
queue_size = 1
ping_interval = "2m"

[s2s.retry]
max_retries = 0
initial_delay = "500ms"
max_delay = "2m"
backoff_multiplier = 3

[dns]
nameservers = ["127.0.0.53", "192.0.2.53:5353", "[2001:db8::53]:53", "::1"]

[metrics]
enabled = false
address = "::1"
port = 9100
max_domains = 100000
)";
  std::string full = text;
  for (auto [from, to] : {std::pair{std::string("\"CERT\""), "\"" + cert + "\""},
                          std::pair{std::string("\"KEY\""), "\"" + key + "\""}}) {
    for (auto pos = full.find(from); pos != std::string::npos; pos = full.find(from)) {
      full.replace(pos, from.size(), to);
    }
  }

  const Config c = parse_config(full, "w.toml");
  EXPECT_EQ(c.server.domains, (std::vector<std::string>{"example.org", "xn--mnchen-3ya.example"}));
  EXPECT_EQ(c.server.listen, (std::vector<std::string>{"::", "127.0.0.1"}));
  EXPECT_EQ(c.server.log_level, "debug");
  EXPECT_EQ(c.server.data_dir, "/var/lib/waddle");
  EXPECT_EQ(c.server.shutdown_timeout, milliseconds(250));
  EXPECT_EQ(c.tls.default_cert.cert, cert);
  EXPECT_EQ(c.tls.default_cert.key, key);
  EXPECT_EQ(c.tls.ca_file, cert);
  EXPECT_EQ(c.tls.c2s_min_version, "1.3");
  ASSERT_EQ(c.tls.domains.size(), 1u);
  EXPECT_EQ(c.tls.domains.at("conference.example.org").cert, cert);
  EXPECT_EQ(c.tls.domains.at("conference.example.org").key, key);
  EXPECT_FALSE(c.c2s.enabled);
  EXPECT_EQ(c.c2s.port, 15222);
  EXPECT_EQ(c.c2s.direct_tls_port, 15223);
  EXPECT_TRUE(c.c2s.allow_registration);
  EXPECT_EQ(c.c2s.max_auth_failures, 5u);
  EXPECT_EQ(c.c2s.max_offline_messages, 0u);
  EXPECT_EQ(c.c2s.max_offline_pending, 2u * 1024 * 1024);
  EXPECT_EQ(c.c2s.limits.max_stanza_size, 1048576u);
  EXPECT_EQ(c.c2s.limits.max_depth, 32u);
  EXPECT_EQ(c.c2s.limits.max_attributes, 16u);
  EXPECT_EQ(c.c2s.limits.max_header_size, 8192u);
  EXPECT_EQ(c.c2s.limits.handshake_timeout, seconds(60));
  EXPECT_EQ(c.storage.path, "/srv/waddle.db");
  EXPECT_EQ(c.storage_path(), "/srv/waddle.db");
  EXPECT_FALSE(c.s2s.enabled);
  EXPECT_EQ(c.s2s.port, 15269);
  EXPECT_EQ(c.s2s.cert_path, cert);
  EXPECT_EQ(c.s2s.key_path, key);
  EXPECT_EQ(c.s2s.connect_timeout, seconds(5));
  EXPECT_EQ(c.s2s.idle_timeout, seconds(3600));
  EXPECT_EQ(c.s2s.max_connections_per_domain, 2u);
  EXPECT_EQ(c.s2s.max_links, 50u);
  EXPECT_EQ(c.s2s.max_connecting, 7u);
  EXPECT_EQ(c.s2s.policy, "allowlist");
  EXPECT_EQ(c.s2s.allowed_domains, (std::vector<std::string>{"waddle.social", "trusted.example"}));
  EXPECT_EQ(c.s2s.blocked_domains, std::vector<std::string>{"spam.example"});
  EXPECT_EQ(c.s2s.retry.max_retries, 0u);
  EXPECT_EQ(c.s2s.retry.initial_delay, milliseconds(500));
  EXPECT_EQ(c.s2s.retry.max_delay, seconds(120));
  EXPECT_EQ(c.s2s.retry.backoff_multiplier, 3.0);
  EXPECT_TRUE(c.s2s.allow_unverified_dialback);
  EXPECT_EQ(c.s2s.unverified_dialback_domains,
            (std::vector<std::string>{"legacy.example", "xn--mnchen-3ya.example"}));
  EXPECT_EQ(c.s2s.dialback_secret, "0123456789abcdef0123");
  EXPECT_EQ(c.s2s.tls_min_version, "1.2");
  EXPECT_TRUE(c.s2s.allow_internal_addresses);
  EXPECT_EQ(c.s2s.connection_rate, 0u);
  EXPECT_EQ(c.s2s.stanza_rate, 1000000u);
  EXPECT_EQ(c.s2s.stanza_burst, 3u);
  EXPECT_EQ(c.s2s.byte_rate, 1024u * 1024);
  EXPECT_EQ(c.s2s.byte_burst, 65536u);
  EXPECT_EQ(c.s2s.disconnect_when_paced_for, milliseconds(600'000));
  EXPECT_EQ(c.s2s.bandwidth_limit, 1048576u);
  EXPECT_EQ(c.s2s.max_stanza_size, 65536u);
  EXPECT_EQ(c.s2s.handshake_timeout, seconds(15));
  EXPECT_EQ(c.s2s.queue_size, 1u);
  EXPECT_EQ(c.s2s.ping_interval, seconds(120));
  EXPECT_FALSE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.address, "::1");
  EXPECT_EQ(c.metrics.port, 9100);
  EXPECT_EQ(c.metrics.max_domains, 100000u);
  EXPECT_EQ(c.dns.nameservers, (std::vector<std::string>{"127.0.0.53", "192.0.2.53:5353",
                                                         "[2001:db8::53]:53", "::1"}));
}

TEST_F(ConfigTest, MissingKeys_KeepDefaults) {
  const Config c = parse_config("[c2s]\nport = 5223\n", "w.toml");
  EXPECT_EQ(c.c2s.port, 5223);
  EXPECT_TRUE(c.c2s.enabled);
  EXPECT_EQ(c.c2s.limits.max_depth, 64u);
  EXPECT_EQ(c.server.domains, std::vector<std::string>{"localhost"});
}

TEST_F(ConfigTest, UnknownKey_ReportsFileLineAndPath) {
  EXPECT_EQ(error_of("[server]\ndomains = [\"a.example\"]\nbogus = 1\n"),
            "w.toml:3:1: server.bogus: unknown key");
  EXPECT_EQ(error_of("\n\n[c2s.limits]\nmax_depth = 8\nmax_deepth = 9\n"),
            "w.toml:5:1: c2s.limits.max_deepth: unknown key");
  EXPECT_EQ(error_of("top = 1\n"), "w.toml:1:1: top: unknown key");
  // The first unknown key in the file is reported, not the first in alphabetical order.
  EXPECT_EQ(error_of("[dns]\nzzz = 1\naaa = 2\n"), "w.toml:2:1: dns.zzz: unknown key");
}

TEST_F(ConfigTest, UnknownTable_ReportsFileLineAndPath) {
  EXPECT_EQ(error_of("[server]\nlog_level = \"info\"\n\n[bogus]\nx = 1\n"),
            "w.toml:4:2: bogus: unknown table");
  EXPECT_EQ(error_of("[s2s]\nport = 5269\n[s2s.retries]\n"),
            "w.toml:3:6: s2s.retries: unknown table");
  EXPECT_EQ(error_of("[tls.domains.\"example.org\".extra]\n"),
            "w.toml:1:28: tls.domains.\"example.org\".extra: unknown table");
}

TEST_F(ConfigTest, WrongType_IsAnError) {
  EXPECT_EQ(error_of("[c2s]\nport = \"abc\"\n"),
            "w.toml:2:1: c2s.port: expected an integer between 1 and 65535, got \"abc\"");
  EXPECT_EQ(error_of("[c2s]\nport = \"5222\"\n"),
            "w.toml:2:1: c2s.port: expected an integer between 1 and 65535, got \"5222\"");
  EXPECT_EQ(error_of("[c2s]\nport = 5222.0\n"),
            "w.toml:2:1: c2s.port: expected an integer between 1 and 65535, got 5222.0");
  EXPECT_EQ(error_of("[c2s]\nenabled = \"true\"\n"),
            "w.toml:2:1: c2s.enabled: expected a boolean (true or false), got \"true\"");
  EXPECT_EQ(error_of("[c2s]\nallow_registration = 1\n"),
            "w.toml:2:1: c2s.allow_registration: expected a boolean (true or false), got 1");
  EXPECT_EQ(error_of("[server]\ndomains = \"example.org\"\n"),
            "w.toml:2:1: server.domains: expected an array of strings, got \"example.org\"");
  EXPECT_EQ(error_of("[server]\ndomains = [\"a.example\", 5]\n"),
            "w.toml:2:25: server.domains[1]: expected a domain name, got 5");
  EXPECT_EQ(error_of("[storage]\npath = 5\n"),
            "w.toml:2:1: storage.path: expected a string, got 5");
  EXPECT_EQ(error_of("server = 5\n"), "w.toml:1:1: server: expected a table, got 5");
  EXPECT_EQ(error_of("[[server]]\n"), "w.toml:1:3: server: expected a table, got an array");
  EXPECT_EQ(error_of("[c2s]\nlimits = 5\n"), "w.toml:2:1: c2s.limits: expected a table, got 5");
}

TEST_F(ConfigTest, OutOfRange_IsAnError) {
  EXPECT_EQ(error_of("[c2s]\nport = 70000\n"),
            "w.toml:2:1: c2s.port: expected an integer between 1 and 65535, got 70000");
  EXPECT_EQ(error_of("[c2s]\nport = 0\n"),
            "w.toml:2:1: c2s.port: expected an integer between 1 and 65535, got 0");
  EXPECT_EQ(error_of("[c2s]\nmax_auth_failures = 0\n"),
            "w.toml:2:1: c2s.max_auth_failures: expected an integer between 1 and 100, got 0");
  EXPECT_EQ(error_of("[c2s.limits]\nmax_stanza_size = 1023\n"),
            "w.toml:2:1: c2s.limits.max_stanza_size: expected an integer between 1024 and "
            "67108864, got 1023");
  EXPECT_EQ(error_of("[c2s]\nmax_offline_messages = -1\n"),
            "w.toml:2:1: c2s.max_offline_messages: expected an integer between 0 and 1000000, "
            "got -1");
  EXPECT_EQ(error_of("[s2s]\nmax_connections_per_domain = 101\n"),
            "w.toml:2:1: s2s.max_connections_per_domain: expected an integer between 1 and 100, "
            "got 101");
  EXPECT_EQ(error_of("[s2s.retry]\nbackoff_multiplier = 0.5\n"),
            "w.toml:2:1: s2s.retry.backoff_multiplier: expected a number between 1.0 and 10.0, "
            "got 0.5");
  EXPECT_EQ(error_of("[s2s.retry]\nbackoff_multiplier = nan\n"),
            "w.toml:2:1: s2s.retry.backoff_multiplier: expected a number between 1.0 and 10.0, "
            "got nan");
  EXPECT_EQ(error_of("[s2s.retry]\nbackoff_multiplier = 11\n"),
            "w.toml:2:1: s2s.retry.backoff_multiplier: expected a number between 1.0 and 10.0, "
            "got 11");
}

TEST_F(ConfigTest, Choices_RejectOtherValues) {
  EXPECT_EQ(error_of("[server]\nlog_level = \"verbose\"\n"),
            "w.toml:2:1: server.log_level: expected one of \"trace\", \"debug\", \"info\", "
            "\"warn\", \"error\", \"off\", got \"verbose\"");
  EXPECT_EQ(error_of("[tls]\nc2s_min_version = 1.3\n"),
            "w.toml:2:1: tls.c2s_min_version: expected one of \"1.2\", \"1.3\", got 1.3");
  EXPECT_EQ(error_of("[server]\nlog_level = \"in\\nfo\"\n"),
            "w.toml:2:1: server.log_level: expected one of \"trace\", \"debug\", \"info\", "
            "\"warn\", \"error\", \"off\", got \"in\\u000Afo\"");
  EXPECT_EQ(error_of("[storage]\nbackend = \"postgres\"\n"),
            "w.toml:2:1: storage.backend: expected one of \"sqlite\", got \"postgres\"");
  EXPECT_EQ(error_of("[s2s]\npolicy = \"closed\"\n"),
            "w.toml:2:1: s2s.policy: expected one of \"open\", \"allowlist\", \"blocklist\", "
            "got \"closed\"");
}

TEST_F(ConfigTest, Allowlist_MayBeEmpty) {
  const Config c = parse_config("[s2s]\npolicy = \"allowlist\"\nallowed_domains = []\n", "w.toml");
  EXPECT_EQ(c.s2s.policy, "allowlist");
  EXPECT_TRUE(c.s2s.allowed_domains.empty());
}

TEST_F(ConfigTest, BadDuration_IsAnError) {
  const std::string expected =
      "expected a positive duration such as \"250ms\", \"10s\", \"5m\" or \"1h\", got ";
  EXPECT_EQ(error_of("[s2s]\nconnect_timeout = \"10 s\"\n"),
            "w.toml:2:1: s2s.connect_timeout: " + expected + "\"10 s\"");
  EXPECT_EQ(error_of("[s2s]\nidle_timeout = 300\n"),
            "w.toml:2:1: s2s.idle_timeout: " + expected + "300");
  EXPECT_EQ(error_of("[server]\nshutdown_timeout = \"0s\"\n"),
            "w.toml:2:1: server.shutdown_timeout: " + expected + "\"0s\"");
  EXPECT_EQ(error_of("\n[c2s.limits]\nhandshake_timeout = \"1d\"\n"),
            "w.toml:3:1: c2s.limits.handshake_timeout: " + expected + "\"1d\"");
  EXPECT_EQ(error_of("[s2s.retry]\ninitial_delay = \"-1s\"\n"),
            "w.toml:2:1: s2s.retry.initial_delay: " + expected + "\"-1s\"");
}

TEST_F(ConfigTest, RetryDelays_MaxNotBelowInitial) {
  EXPECT_EQ(error_of("[s2s.retry]\ninitial_delay = \"1m\"\nmax_delay = \"30s\"\n"),
            "w.toml:3:1: s2s.retry.max_delay: max_delay (30s) must not be shorter than "
            "initial_delay (1m)");
  EXPECT_EQ(error_of("[s2s.retry]\ninitial_delay = \"1m\"\n"),
            "w.toml:2:1: s2s.retry.initial_delay: max_delay (30s) must not be shorter than "
            "initial_delay (1m)");
}

TEST_F(ConfigTest, MissingFile_ReportsStrerror) {
  const std::string path = (dir_ / "absent.toml").string();
  try {
    load_config(path);
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), path + ": cannot read: No such file or directory");
  }
}

TEST_F(ConfigTest, DirectoryAsFile_ReportsStrerror) {
  try {
    load_config(dir_.string());
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), dir_.string() + ": cannot read: Is a directory");
  }
}

TEST_F(ConfigTest, LoadConfig_ErrorsNameTheFile) {
  const std::string path = write("waddle.toml", "[server]\n\n\ndata_dir = false\n");
  try {
    load_config(path);
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              path + ":4:1: server.data_dir: expected a non-empty string, got false");
  }
}

TEST_F(ConfigTest, LoadConfig_SetsSource) {
  const std::string path = write("waddle.toml", "[server]\ndomains = [\"example.net\"]\n");
  const Config c = load_config(path);
  EXPECT_EQ(c.source, path);
  EXPECT_EQ(c.server.domains, std::vector<std::string>{"example.net"});
}

TEST_F(ConfigTest, UnreadableCert_ReportsFileLineKeyAndReason) {
  const std::string key = write("k.pem", kKeyPem);
  const std::string cert = write("c.pem", kCertPem);
  EXPECT_EQ(error_of("[tls]\n\n\n\ncert = \"/nope.pem\"\nkey = \"" + key + "\"\n"),
            "w.toml:5:1: tls.cert: cannot read \"/nope.pem\": No such file or directory");
  EXPECT_EQ(error_of("[s2s]\nkey_path = \"" + dir_.string() + "\"\n"),
            "w.toml:2:1: s2s.key_path: cannot read \"" + dir_.string() + "\": Is a directory");
  EXPECT_EQ(error_of("[tls]\nca_file = \"/nope/ca.pem\"\n"),
            "w.toml:2:1: tls.ca_file: cannot read \"/nope/ca.pem\": No such file or directory");
  EXPECT_EQ(
      error_of("[tls.domains.\"example.org\"]\ncert = \"" + cert + "\"\nkey = \"/nope.key\"\n"),
      "w.toml:3:1: tls.domains.\"example.org\".key: cannot read \"/nope.key\": No such file "
      "or directory");
}

TEST_F(ConfigTest, CertThatIsNotPem_ReportsFileLineKeyAndReason) {
  const std::string garbage = write("garbage.pem", "not a certificate");
  const std::string key = write("k.pem", kKeyPem);
  EXPECT_EQ(error_of("[tls]\ncert = \"" + garbage + "\"\nkey = \"" + key + "\"\n"),
            "w.toml:2:1: tls.cert: cannot use \"" + garbage + "\": no PEM certificate in it");
  const std::string cert = write("c.pem", kCertPem);
  EXPECT_EQ(error_of("[tls]\ncert = \"" + cert + "\"\nkey = \"" + cert + "\"\n"),
            "w.toml:3:1: tls.key: cannot use \"" + cert + "\": no PEM private key in it");
}

TEST_F(ConfigTest, CertWithoutKey_IsAnError) {
  const std::string cert = write("c.pem", kCertPem);
  EXPECT_EQ(error_of("[tls]\ncert = \"" + cert + "\"\n"),
            "w.toml:2:1: tls.cert: tls.cert and tls.key must be set together");
  const std::string key = write("k.pem", kKeyPem);
  EXPECT_EQ(error_of("[tls]\nkey = \"" + key + "\"\n"),
            "w.toml:2:1: tls.key: tls.cert and tls.key must be set together");
  EXPECT_EQ(error_of("[s2s]\nkey_path = \"" + key + "\"\n"),
            "w.toml:2:1: s2s.key_path: cert_path and key_path must be set together");
}

TEST_F(ConfigTest, TlsDomain_NeedsCertAndKey) {
  const std::string cert = write("c.pem", kCertPem);
  EXPECT_EQ(error_of("[tls.domains.\"example.org\"]\ncert = \"" + cert + "\"\n"),
            "w.toml:1:14: tls.domains.\"example.org\".key: missing; a domain needs both cert "
            "and key");
  EXPECT_EQ(error_of("[tls.domains.\"example.org\"]\ncert = \"" + cert + "\"\nkye = \"x\"\n"),
            "w.toml:3:1: tls.domains.\"example.org\".kye: unknown key");
  EXPECT_EQ(error_of("[tls.domains.\"exa mple.org\"]\n"),
            "w.toml:1:14: tls.domains.\"exa mple.org\": expected a domain name as the table name");
  EXPECT_EQ(error_of("[tls.domains]\n\"example.org\" = \"x\"\n"),
            "w.toml:2:1: tls.domains.\"example.org\": expected a table, got \"x\"");
}

// [components.domains."..."]: a secret or the first line of a file, exactly one; the domains
// are served (hosted_domains) and must not be user domains or room services.
TEST_F(ConfigTest, Components_SecretsAndTheirDomains) {
  const std::string file = write("gw.secret", "from a file\r\nsecond line\n");
  const Config c = parse_config(
      "[components]\nport = 5999\n"
      "[components.domains.\"GW.example.org\"]\nsecret = \"s3cret\"\n"
      "[components.domains.\"bot.example.org\"]\nsecret_file = \"" +
          file + "\"\n",
      "w.toml");
  EXPECT_EQ(c.components.port, 5999);
  EXPECT_EQ(c.components.secrets,
            (std::map<std::string, std::string>{{"bot.example.org", "from a file"},
                                                {"gw.example.org", "s3cret"}}));
  const auto hosted = c.hosted_domains();
  EXPECT_NE(std::find(hosted.begin(), hosted.end(), "gw.example.org"), hosted.end());
  EXPECT_NE(std::find(hosted.begin(), hosted.end(), "bot.example.org"), hosted.end());
  EXPECT_EQ(error_of("[components.domains.\"gw.example.org\"]\n"),
            "w.toml:1:21: components.domains.\"gw.example.org\": needs exactly one of secret and "
            "secret_file");
  EXPECT_EQ(error_of("[components.domains.\"gw.example.org\"]\nsecret = \"a\"\nsecret_file = \"" +
                     file + "\"\n"),
            "w.toml:1:21: components.domains.\"gw.example.org\": needs exactly one of secret and "
            "secret_file");
  EXPECT_EQ(error_of("[components.domains.\"conference.localhost\"]\nsecret = \"a\"\n"),
            "w.toml:1:13: components.domains: the component domain \"conference.localhost\" is "
            "also a user domain or a room service");
  EXPECT_EQ(error_of("[components]\nport = 5222\n[components.domains.\"gw.example.org\"]\n"
                     "secret = \"a\"\n"),
            "w.toml:2:1: components.port: port 5222 is used by components and another listener");
}

TEST_F(ConfigTest, Domains_ArePreparedAndValidated) {
  EXPECT_EQ(error_of("[server]\ndomains = []\n"),
            "w.toml:2:1: server.domains: expected at least one");
  EXPECT_EQ(error_of("[server]\ndomains = [\"ok.example\",\n  \"bad domain\"]\n"),
            "w.toml:3:3: server.domains[1]: expected a domain name, got \"bad domain\"");
  EXPECT_EQ(error_of("[server]\ndomains = [\"a.example\", \"A.EXAMPLE.\"]\n"),
            "w.toml:2:25: server.domains[1]: duplicate \"a.example\"");
  EXPECT_EQ(error_of("[s2s]\nblocked_domains = [\"spam@example\"]\n"),
            "w.toml:2:20: s2s.blocked_domains[0]: expected a domain name, got \"spam@example\"");
}

TEST_F(ConfigTest, Listen_AcceptsOnlyIpLiterals) {
  const Config c = parse_config("[server]\nlisten = [\"0.0.0.0\", \"::1\"]\n", "w.toml");
  EXPECT_EQ(c.server.listen, (std::vector<std::string>{"0.0.0.0", "::1"}));
  EXPECT_EQ(error_of("[server]\nlisten = [\"localhost\"]\n"),
            "w.toml:2:11: server.listen[0]: expected an IP address, got \"localhost\"");
  EXPECT_EQ(error_of("[server]\nlisten = [\"[::1]\"]\n"),
            "w.toml:2:11: server.listen[0]: expected an IP address, got \"[::1]\"");
  EXPECT_EQ(error_of("[server]\nlisten = [\"127.0.0.1:5222\"]\n"),
            "w.toml:2:11: server.listen[0]: expected an IP address, got \"127.0.0.1:5222\"");
}

TEST_F(ConfigTest, Nameservers_AcceptAddressWithOptionalPort) {
  for (const char* ok :
       {"127.0.0.53", "127.0.0.53:53", "::1", "[::1]", "[::1]:5353", "192.0.2.1:65535"}) {
    EXPECT_NO_THROW(parse_config(std::string("[dns]\nnameservers = [\"") + ok + "\"]\n", "w.toml"))
        << ok;
  }
  for (const char* bad : {"ns.example", "127.0.0.53:0", "127.0.0.53:65536", "127.0.0.53:",
                          "::1:53x", "[::1]53", "[::1", "[127.0.0.1]:53", "1.2.3.4:5:6", ""}) {
    const std::string message = error_of(std::string("[dns]\nnameservers = [\"") + bad + "\"]\n");
    EXPECT_EQ(message.rfind("w.toml:2:16: dns.nameservers[0]: expected an address", 0), 0u)
        << bad << " -> " << message;
  }
}

TEST_F(ConfigTest, Ports_MustNotCollide) {
  EXPECT_EQ(error_of("[c2s]\nport = 5223\ndirect_tls_port = 5223\n"),
            "w.toml:3:1: c2s.direct_tls_port: c2s.port and c2s.direct_tls_port are equal");
  EXPECT_EQ(error_of("[s2s]\nport = 5222\n"),
            "w.toml:2:1: s2s.port: port 5222 is used by both c2s and s2s");
  EXPECT_EQ(error_of("[c2s]\nport = 5269\n"),
            "w.toml:2:1: c2s.port: port 5269 is used by both c2s and s2s");
  EXPECT_NO_THROW(parse_config("[c2s]\nenabled = false\nport = 5269\n", "w.toml"));
}

TEST_F(ConfigTest, S2sLimits_OutOfRangeIsAnError) {
  EXPECT_EQ(error_of("[s2s]\nconnection_rate = -1\n"),
            "w.toml:2:1: s2s.connection_rate: expected an integer between 0 and 1000000, got -1");
  EXPECT_EQ(error_of("[s2s]\nstanza_rate = 1000001\n"),
            "w.toml:2:1: s2s.stanza_rate: expected an integer between 0 and 1000000, got 1000001");
  EXPECT_EQ(error_of("[s2s]\nstanza_rate = 2.5\n"),
            "w.toml:2:1: s2s.stanza_rate: expected an integer between 0 and 1000000, got 2.5");
  EXPECT_EQ(error_of("[s2s]\nstanza_burst = 0\n"),
            "w.toml:2:1: s2s.stanza_burst: expected an integer between 1 and 100000000, got 0");
  EXPECT_EQ(error_of("[s2s]\nbyte_burst = 0\n"),
            "w.toml:2:1: s2s.byte_burst: expected an integer between 1 and 10737418240 or a size "
            "such as \"500KiB\", \"10MiB\" or \"1GB\", got 0");
  EXPECT_EQ(error_of("[s2s]\nbyte_burst = \"1MiB/s\"\n"),
            "w.toml:2:1: s2s.byte_burst: expected an integer between 1 and 10737418240 or a size "
            "such as \"500KiB\", \"10MiB\" or \"1GB\", got \"1MiB/s\"");
  EXPECT_EQ(error_of("[s2s]\nbyte_rate = \"11GiB\"\n"),
            "w.toml:2:1: s2s.byte_rate: expected an integer between 0 and 10737418240 or a size "
            "such as \"500KiB\", \"10MiB\" or \"1GB\", got \"11GiB\"");
  EXPECT_EQ(error_of("[s2s]\n\nmax_stanza_size = 1023\n"),
            "w.toml:3:1: s2s.max_stanza_size: expected an integer between 1024 and 67108864, got "
            "1023");
  EXPECT_EQ(error_of("[s2s]\nmax_stanza_size = 67108865\n"),
            "w.toml:2:1: s2s.max_stanza_size: expected an integer between 1024 and 67108864, got "
            "67108865");
  EXPECT_EQ(error_of("[s2s]\nqueue_size = 0\n"),
            "w.toml:2:1: s2s.queue_size: expected an integer between 1 and 1000000, got 0");
  EXPECT_EQ(error_of("[s2s]\nqueue_size = 1000001\n"),
            "w.toml:2:1: s2s.queue_size: expected an integer between 1 and 1000000, got 1000001");
  const Config c = parse_config(
      "[s2s]\nconnection_rate = 1000000\nstanza_burst = 100000000\nbyte_rate = 0\n"
      "byte_burst = \"10GiB\"\nmax_stanza_size = 67108864\nqueue_size = 1000000\n",
      "w.toml");
  EXPECT_EQ(c.s2s.connection_rate, 1000000u);
  EXPECT_EQ(c.s2s.stanza_burst, 100000000u);
  EXPECT_EQ(c.s2s.byte_rate, 0u);
  EXPECT_EQ(c.s2s.byte_burst, 10737418240u);
  EXPECT_EQ(c.s2s.max_stanza_size, 67108864u);
  EXPECT_EQ(c.s2s.queue_size, 1000000u);
}

// The write bounds: parsed as byte sizes and durations, bounded, and never in force below
// twice the largest stanza a stream may be given.
TEST_F(ConfigTest, WriteBounds_ParsedAndNeverBelowTwoStanzas) {
  const Config c = parse_config(
      "[c2s.limits]\nmax_write_queue = \"1MiB\"\nwrite_stall_timeout = \"5s\"\n"
      "[s2s]\nmax_write_queue = 2097152\nwrite_stall_timeout = \"90s\"\nmax_unacked = 500\n"
      "max_unacked_bytes = \"1MiB\"\n",
      "w.toml");
  EXPECT_EQ(c.c2s.limits.max_write_queue, 1024u * 1024);
  EXPECT_EQ(c.c2s.limits.write_stall_timeout, seconds(5));
  EXPECT_EQ(c.s2s.max_write_queue, 2u * 1024 * 1024);
  EXPECT_EQ(c.s2s.write_stall_timeout, seconds(90));
  EXPECT_EQ(c.s2s.max_unacked, 500u);
  EXPECT_EQ(c.s2s.max_unacked_bytes, 1024u * 1024);
  EXPECT_EQ(c.c2s_write_queue(), 1024u * 1024);  // = twice s2s.max_stanza_size (512 KiB)
  EXPECT_EQ(c.s2s_write_queue(), 2u * 1024 * 1024);
  const Config big = parse_config(
      "[c2s.limits]\nmax_write_queue = \"64KiB\"\n[s2s]\nmax_stanza_size = 4194304\n", "w.toml");
  EXPECT_EQ(big.c2s_write_queue(), 8u * 1024 * 1024);
  EXPECT_EQ(big.s2s_write_queue(), 8u * 1024 * 1024);
  EXPECT_EQ(error_of("[c2s.limits]\nmax_write_queue = \"1KiB\"\n"),
            "w.toml:2:1: c2s.limits.max_write_queue: expected an integer between 65536 and "
            "10737418240 or a size such as \"500KiB\", \"10MiB\" or \"1GB\", got \"1KiB\"");
  EXPECT_EQ(error_of("[s2s]\nmax_unacked = 10\n"),
            "w.toml:2:1: s2s.max_unacked: expected an integer between 64 and 100000000, got 10");
}

// What a client may leave unacknowledged (XEP-0198) and have held back (XEP-0352), in bytes:
// the first never in force below twice the largest stanza, the second down to 0.
TEST_F(ConfigTest, C2sQueueBytes_ParsedAndBounded) {
  const Config c =
      parse_config("[c2s]\nmax_unacked_bytes = \"2MiB\"\ncsi_queue_bytes = 0\n", "w.toml");
  EXPECT_EQ(c.c2s.max_unacked_bytes, 2u * 1024 * 1024);
  EXPECT_EQ(c.c2s_unacked_bytes(), 2u * 1024 * 1024);
  EXPECT_EQ(c.c2s.csi_queue_bytes, 0u);
  const Config small = parse_config(
      "[c2s]\nmax_unacked_bytes = \"64KiB\"\n[c2s.limits]\nmax_stanza_size = 16384\n"
      "[s2s]\nmax_stanza_size = 20000\n",
      "w.toml");
  EXPECT_EQ(small.c2s_unacked_bytes(), 64u * 1024);
  const Config low = parse_config("[c2s]\nmax_unacked_bytes = \"64KiB\"\n", "w.toml");
  EXPECT_EQ(low.c2s_unacked_bytes(), 1024u * 1024);  // = twice s2s.max_stanza_size (512 KiB)
  EXPECT_EQ(error_of("[c2s]\nmax_unacked_bytes = 1000\n"),
            "w.toml:2:1: c2s.max_unacked_bytes: expected an integer between 65536 and "
            "10737418240 or a size such as \"500KiB\", \"10MiB\" or \"1GB\", got 1000");
}

TEST_F(ConfigTest, S2sDurations_MustBePositive) {
  const std::string expected =
      "expected a positive duration such as \"250ms\", \"10s\", \"5m\" or \"1h\", got ";
  EXPECT_EQ(error_of("[s2s]\nhandshake_timeout = \"0s\"\n"),
            "w.toml:2:1: s2s.handshake_timeout: " + expected + "\"0s\"");
  EXPECT_EQ(error_of("[s2s]\nping_interval = 60\n"),
            "w.toml:2:1: s2s.ping_interval: " + expected + "60");
  EXPECT_EQ(parse_config("[s2s]\nping_interval = \"250ms\"\n", "w.toml").s2s.ping_interval,
            milliseconds(250));
}

TEST_F(ConfigTest, DisconnectWhenPacedFor_ZeroOrAPositiveDuration) {
  const auto after = [](const std::string& value) {
    return parse_config("[s2s]\ndisconnect_when_paced_for = " + value + "\n", "w.toml")
        .s2s.disconnect_when_paced_for;
  };
  EXPECT_EQ(after("0"), milliseconds(0));
  EXPECT_EQ(after("\"90s\""), milliseconds(90'000));
  EXPECT_EQ(after("\"1h\""), milliseconds(3'600'000));
  const std::string expected =
      "w.toml:2:1: s2s.disconnect_when_paced_for: expected 0 (never) or a positive duration "
      "such as \"30s\", \"5m\" or \"1h\", got ";
  for (const char* bad : {"\"0s\"", "30", "-1", "\"soon\"", "true", "\"\""}) {
    EXPECT_EQ(error_of(std::string("[s2s]\ndisconnect_when_paced_for = ") + bad + "\n"),
              expected + bad)
        << bad;
  }
}

TEST_F(ConfigTest, ThrottleStrikes_StillLoadsWithAWarning) {
  // The key of the old disconnect-after-strikes limit: ignored, and said so.
  const Config c = parse_config("[s2s]\nstanza_rate = 50\n\nthrottle_strikes = 200\n", "w.toml");
  EXPECT_EQ(c.s2s.stanza_rate, 50u);
  EXPECT_EQ(c.s2s.disconnect_when_paced_for, milliseconds(0));
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_EQ(c.warnings[0],
            "w.toml:4:1: s2s.throttle_strikes: no longer used, ignored: a domain over its limits "
            "is paced (read more slowly), never disconnected for volume; remove the key, and set "
            "s2s.disconnect_when_paced_for to disconnect a domain that stays paced");
  // Its value is still checked, as before.
  EXPECT_EQ(error_of("[s2s]\nthrottle_strikes = \"10\"\n"),
            "w.toml:2:1: s2s.throttle_strikes: expected an integer between 0 and 1000000, got "
            "\"10\"");
  EXPECT_TRUE(parse_config("[s2s]\nstanza_rate = 50\n", "w.toml").warnings.empty());
}

TEST_F(ConfigTest, S2sTlsMinVersion_IsAChoice) {
  EXPECT_EQ(parse_config("[s2s]\ntls_min_version = \"1.2\"\n", "w.toml").s2s.tls_min_version,
            "1.2");
  EXPECT_EQ(error_of("[s2s]\ntls_min_version = \"1.1\"\n"),
            "w.toml:2:1: s2s.tls_min_version: expected one of \"1.2\", \"1.3\", got \"1.1\"");
  EXPECT_EQ(error_of("[s2s]\ntls_min_version = 1.3\n"),
            "w.toml:2:1: s2s.tls_min_version: expected one of \"1.2\", \"1.3\", got 1.3");
}

TEST_F(ConfigTest, UnverifiedDialback_TypesAndDomains) {
  EXPECT_EQ(error_of("[s2s]\nallow_unverified_dialback = \"yes\"\n"),
            "w.toml:2:1: s2s.allow_unverified_dialback: expected a boolean (true or false), got "
            "\"yes\"");
  EXPECT_EQ(error_of("[s2s]\nunverified_dialback_domains = \"a.example\"\n"),
            "w.toml:2:1: s2s.unverified_dialback_domains: expected an array of strings, got "
            "\"a.example\"");
  EXPECT_EQ(error_of("[s2s]\nunverified_dialback_domains = [\"a b\"]\n"),
            "w.toml:2:32: s2s.unverified_dialback_domains[0]: expected a domain name, got \"a b\"");
  EXPECT_EQ(error_of("[s2s]\nunverified_dialback_domains = [\"a.example\", \"A.Example.\"]\n"),
            "w.toml:2:45: s2s.unverified_dialback_domains[1]: duplicate \"a.example\"");
}

TEST_F(ConfigTest, AllowInternalAddresses_IsABoolean) {
  EXPECT_TRUE(parse_config("[s2s]\nallow_internal_addresses = true\n", "w.toml")
                  .s2s.allow_internal_addresses);
  EXPECT_EQ(error_of("[s2s]\nallow_internal_addresses = \"true\"\n"),
            "w.toml:2:1: s2s.allow_internal_addresses: expected a boolean (true or false), got "
            "\"true\"");
  EXPECT_EQ(error_of("[s2s]\nallow_internal_addresses = 1\n"),
            "w.toml:2:1: s2s.allow_internal_addresses: expected a boolean (true or false), got 1");
}

// An allowlisted IP-literal domain could never be reached while such domains are refused.
TEST_F(ConfigTest, AllowlistedIpLiteral_NeedsAllowInternalAddresses) {
  const std::string allowlist =
      "[s2s]\npolicy = \"allowlist\"\nallowed_domains = [\"a.example\", \"10.0.0.5\"]\n";
  EXPECT_EQ(error_of(allowlist),
            "w.toml:3:1: s2s.allowed_domains: \"10.0.0.5\" is an IP address, and stanzas to "
            "IP-literal domains are refused unless s2s.allow_internal_addresses = true");
  EXPECT_NE(error_of("[s2s]\npolicy = \"allowlist\"\nallowed_domains = [\"[::1]\"]\n")
                .find("\"[::1]\" is an IP address"),
            std::string::npos);
  EXPECT_EQ(
      parse_config(allowlist + "allow_internal_addresses = true\n", "w.toml").s2s.allowed_domains,
      (std::vector<std::string>{"a.example", "10.0.0.5"}));
  // Not an allowlist: the list is not used.
  EXPECT_NO_THROW(parse_config("[s2s]\nallowed_domains = [\"10.0.0.5\"]\n", "w.toml"));
}

TEST_F(ConfigTest, DialbackSecret_IsEmptyOrLongEnough) {
  EXPECT_EQ(parse_config("[s2s]\ndialback_secret = \"\"\n", "w.toml").s2s.dialback_secret, "");
  EXPECT_EQ(
      parse_config("[s2s]\ndialback_secret = \"0123456789abcdef\"\n", "w.toml").s2s.dialback_secret,
      "0123456789abcdef");
  EXPECT_EQ(error_of("[s2s]\n\ndialback_secret = \"hunter2\"\n"),
            "w.toml:3:1: s2s.dialback_secret: expected at least 16 characters (or \"\" to "
            "generate one), got 7");
  EXPECT_EQ(error_of("[s2s]\ndialback_secret = 1234567890123456\n"),
            "w.toml:2:1: s2s.dialback_secret: expected a string, got 1234567890123456");
}

TEST_F(ConfigTest, BandwidthLimit_AcceptsBytesOrSizes) {
  const auto bandwidth = [](const std::string& value) {
    return parse_config("[s2s]\nbandwidth_limit = " + value + "\n", "w.toml").s2s.bandwidth_limit;
  };
  EXPECT_EQ(bandwidth("0"), 0u);
  EXPECT_EQ(bandwidth("125000"), 125000u);
  EXPECT_EQ(bandwidth("10737418240"), 10737418240u);
  EXPECT_EQ(bandwidth("\"0B\""), 0u);
  EXPECT_EQ(bandwidth("\"512B\""), 512u);
  EXPECT_EQ(bandwidth("\"500KiB\""), 500u * 1024);
  EXPECT_EQ(bandwidth("\"500kB\""), 500u * 1000);
  EXPECT_EQ(bandwidth("\"500KB\""), 500u * 1000);
  EXPECT_EQ(bandwidth("\"10MiB\""), 10u * 1024 * 1024);
  EXPECT_EQ(bandwidth("\"10MB/s\""), 10u * 1000 * 1000);
  EXPECT_EQ(bandwidth("\"1GB\""), 1000u * 1000 * 1000);
  EXPECT_EQ(bandwidth("\"10GiB\""), 10737418240u);

  const std::string expected =
      "s2s.bandwidth_limit: expected an integer between 0 and 10737418240 or a size such as "
      "\"500KiB\", \"10MiB\" or \"1GB\", got ";
  for (const char* bad : {"\"11GiB\"", "\"10737418241B\"", "\"1TB\"", "\"10 MiB\"", "\"10mib\"",
                          "\"MiB\"", "\"1.5MiB\"", "\"-1KiB\"", "\"100\"", "\"\"",
                          "\"99999999999999999999999GiB\"", "-1", "10737418241", "1.5", "true"}) {
    EXPECT_EQ(error_of(std::string("[s2s]\nbandwidth_limit = ") + bad + "\n"),
              "w.toml:2:1: " + expected + bad)
        << bad;
  }
}

TEST_F(ConfigTest, Metrics_ValidatesEveryKey) {
  const Config c =
      parse_config("[metrics]\naddress = \"0.0.0.0\"\nport = 1\nmax_domains = 1\n", "w.toml");
  EXPECT_TRUE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.address, "0.0.0.0");
  EXPECT_EQ(c.metrics.port, 1);
  EXPECT_EQ(c.metrics.max_domains, 1u);
  EXPECT_EQ(error_of("[metrics]\nenabled = 1\n"),
            "w.toml:2:1: metrics.enabled: expected a boolean (true or false), got 1");
  EXPECT_EQ(error_of("[metrics]\naddress = \"localhost\"\n"),
            "w.toml:2:1: metrics.address: expected an IP address, got \"localhost\"");
  EXPECT_EQ(error_of("[metrics]\naddress = \"127.0.0.1:9100\"\n"),
            "w.toml:2:1: metrics.address: expected an IP address, got \"127.0.0.1:9100\"");
  EXPECT_EQ(error_of("[metrics]\naddress = \"\"\n"),
            "w.toml:2:1: metrics.address: expected an IP address, got \"\"");
  EXPECT_EQ(error_of("[metrics]\naddress = [\"::1\"]\n"),
            "w.toml:2:1: metrics.address: expected an IP address, got an array");
  EXPECT_EQ(error_of("[metrics]\nport = 0\n"),
            "w.toml:2:1: metrics.port: expected an integer between 1 and 65535, got 0");
  EXPECT_EQ(error_of("[metrics]\nport = 65536\n"),
            "w.toml:2:1: metrics.port: expected an integer between 1 and 65535, got 65536");
  EXPECT_EQ(error_of("[metrics]\nmax_domains = 0\n"),
            "w.toml:2:1: metrics.max_domains: expected an integer between 1 and 100000, got 0");
  EXPECT_EQ(error_of("[metrics]\nmax_domains = 100001\n"),
            "w.toml:2:1: metrics.max_domains: expected an integer between 1 and 100000, got "
            "100001");
  EXPECT_EQ(error_of("[metrics]\npath = \"/metrics\"\n"), "w.toml:2:1: metrics.path: unknown key");
  EXPECT_EQ(error_of("metrics = true\n"), "w.toml:1:1: metrics: expected a table, got true");
}

TEST_F(ConfigTest, MetricsPort_MustNotCollideWithListeners) {
  // server.listen empty: c2s and s2s listen on every address.
  EXPECT_EQ(error_of("[metrics]\nport = 5222\n"),
            "w.toml:2:1: metrics.port: port 5222 is used by both c2s and metrics on "
            "\"127.0.0.1\"");
  EXPECT_EQ(error_of("[c2s]\ndirect_tls_port = 5280\n"),
            "w.toml:2:1: c2s.direct_tls_port: port 5280 is used by both c2s and metrics on "
            "\"127.0.0.1\"");
  EXPECT_EQ(error_of("[s2s]\nport = 5280\n"),
            "w.toml:2:1: s2s.port: port 5280 is used by both s2s and metrics on \"127.0.0.1\"");
  // Disabled services and a disabled endpoint do not collide.
  EXPECT_NO_THROW(parse_config("[metrics]\nenabled = false\nport = 5222\n", "w.toml"));
  EXPECT_NO_THROW(parse_config("[c2s]\nenabled = false\n[metrics]\nport = 5222\n", "w.toml"));
  EXPECT_NO_THROW(parse_config("[s2s]\nenabled = false\n[metrics]\nport = 5269\n", "w.toml"));

  // Explicit listen addresses: only overlapping addresses collide.
  const auto with_listen = [](const std::string& listen, const std::string& address) {
    return "[server]\nlisten = [" + listen + "]\n[metrics]\naddress = \"" + address +
           "\"\nport = 5222\n";
  };
  EXPECT_NO_THROW(parse_config(with_listen("\"192.0.2.1\"", "127.0.0.1"), "w.toml"));
  EXPECT_NO_THROW(parse_config(with_listen("\"::1\"", "127.0.0.1"), "w.toml"));
  EXPECT_NO_THROW(parse_config(with_listen("\"0.0.0.0\"", "::1"), "w.toml"));
  EXPECT_NO_THROW(parse_config(with_listen("\"2001:db8::1\"", "0.0.0.0"), "w.toml"));
  for (auto [listen, address] :
       {std::pair{"\"127.0.0.1\"", "127.0.0.1"},
        std::pair{"\"192.0.2.1\", \"0.0.0.0\"", "127.0.0.1"}, std::pair{"\"::\"", "127.0.0.1"},
        std::pair{"\"::1\"", "::"}, std::pair{"\"127.0.0.1\"", "::"},
        std::pair{"\"::ffff:127.0.0.1\"", "127.0.0.1"},
        std::pair{"\"2001:db8::1\"", "2001:DB8:0::1"}}) {
    EXPECT_EQ(error_of(with_listen(listen, address)),
              std::string("w.toml:5:1: metrics.port: port 5222 is used by both c2s and metrics on "
                          "\"") +
                  address + "\"")
        << listen << " / " << address;
  }
  // Without metrics.port in the file, the listener port that it clashes with is blamed.
  EXPECT_EQ(error_of("[c2s]\nport = 5280\n[metrics]\naddress = \"::1\"\n"),
            "w.toml:2:1: c2s.port: port 5280 is used by both c2s and metrics on \"::1\"");
}

TEST_F(ConfigTest, SyntaxError_ReportsParserLocation) {
  const std::string message = error_of("[server]\nlog_level = \"info\"\ndata_dir = \n");
  EXPECT_EQ(message.rfind("w.toml:3:", 0), 0u) << message;
  EXPECT_NE(message.find(": syntax error: "), std::string::npos) << message;

  const std::string dup = error_of("[c2s]\nport = 1\n\nport = 2\n");
  EXPECT_EQ(dup.rfind("w.toml:4:", 0), 0u) << dup;

  const std::string unclosed = error_of("\n\n[server\n");
  EXPECT_EQ(unclosed.rfind("w.toml:3:", 0), 0u) << unclosed;
}

}  // namespace
}  // namespace waddle::core
