// Typed server configuration loaded from one TOML file; one struct per module, defaults
// and bounds here, validated at start-up (STYLE.md convention 3).
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/duration.h"

namespace waddle::core {

struct ServerConfig {
  std::vector<std::string> domains{"localhost"};  // prepared domain names served
  std::vector<std::string> listen;                // addresses; empty = all (:: and 0.0.0.0)
  std::string log_level = "info";                 // trace, debug, info, warn, error, off
  std::string data_dir = "./data";
  Duration shutdown_timeout{std::chrono::seconds(5)};
};

struct CertKey {
  std::string cert;  // PEM file path
  std::string key;   // PEM file path
};

struct TlsConfig {
  CertKey default_cert;                    // empty = self-signed generated in data_dir/certs
  std::map<std::string, CertKey> domains;  // [tls.domains."example.org"]
  std::string ca_file;                     // CA bundle; empty = system store
  std::string c2s_min_version = "1.2";     // "1.2" or "1.3"
};

struct StreamLimits {
  std::size_t max_stanza_size = 256 * 1024;
  // Before a client or server stream has authenticated (docs/security.md "Memory").
  std::size_t max_unauthenticated_stanza_size = 10 * 1024;
  std::size_t max_depth = 64;
  std::size_t max_attributes = 64;
  std::size_t max_header_size = 4096;
  Duration handshake_timeout{std::chrono::seconds(30)};
  // Output queued for a client and not yet written: beyond it, or with no write progress for
  // write_stall_timeout while output waits, the session is closed (docs/security.md).
  // Eight times the largest stanza a client can be sent (s2s.max_stanza_size).
  std::uint64_t max_write_queue = 4 * 1024 * 1024;
  Duration write_stall_timeout{std::chrono::seconds(60)};
};

struct C2sConfig {
  bool enabled = true;
  std::uint16_t port = 5222;
  std::uint16_t direct_tls_port = 0;  // XEP-0368; 0 = off
  bool allow_registration = false;
  std::uint32_t max_auth_failures = 3;
  std::uint32_t max_offline_messages = 500;            // per account
  std::uint64_t max_offline_bytes = 10 * 1024 * 1024;  // per account, the stanzas as stored
  // Messages accepted for offline storage and not yet written, in bytes, for all accounts
  // together: past it one more bounces with resource-constraint (docs/security.md "Memory").
  std::uint64_t max_offline_pending = 16 * 1024 * 1024;
  // Subscription requests from contacts outside the roster, kept until answered, per account.
  std::uint32_t max_pending_subscriptions = 1000;
  // Connections accepted and not yet authenticated (SASL success), in total and from one
  // address; more are refused at accept time (docs/security.md "Memory").
  std::uint32_t max_unauthenticated = 1000;
  std::uint32_t max_unauthenticated_per_address = 20;
  // XEP-0199: a bound session that sent nothing for ping_interval is pinged, and closed with
  // connection-timeout when it still sent nothing ping_timeout later; 0 = never.
  Duration ping_interval{std::chrono::seconds(300)};
  Duration ping_timeout{std::chrono::seconds(60)};
  // XEP-0198: how long a session whose connection was lost waits to be resumed (0 = sessions
  // cannot be resumed), and the stanzas and bytes it keeps unacknowledged (past either the
  // session ends; the byte bound is never in force below twice the largest stanza, see
  // c2s_unacked_bytes()).
  Duration resume_timeout{std::chrono::seconds(300)};
  std::uint32_t max_unacked_stanzas = 5000;
  std::uint64_t max_unacked_bytes = 8 * 1024 * 1024;
  // XEP-0352: presence and chat states held back for an inactive client, in stanzas and in
  // bytes (past either they go).
  std::uint32_t csi_queue_size = 256;
  std::uint64_t csi_queue_bytes = 256 * 1024;
  // Entity capabilities (XEP-0115) remembered: distinct 'ver' hashes with their features (the
  // resources of ten times as many JIDs); 0 turns the questions off.
  std::size_t caps_cache_size = 10'000;
  StreamLimits limits;
};

struct StorageConfig {
  std::string backend = "sqlite";
  std::string path;  // empty = <data_dir>/waddle.db
};

struct RetryConfig {
  std::uint32_t max_retries = 3;
  Duration initial_delay{std::chrono::seconds(1)};
  Duration max_delay{std::chrono::seconds(30)};
  double backoff_multiplier = 2.0;
  double jitter = 0.2;  // each delay is spread by up to ± this fraction of itself
};

struct S2sConfig {
  bool enabled = true;
  std::uint16_t port = 5269;
  std::uint16_t direct_tls_port = 0;  // XEP-0368 (_xmpps-server); 0 = off
  std::string cert_path;              // empty = [tls] certificates
  std::string key_path;
  Duration connect_timeout{std::chrono::seconds(10)};
  Duration idle_timeout{std::chrono::seconds(300)};
  std::uint32_t max_connections_per_domain = 5;
  // Outbound links in total, one per (local, remote) pair open, opening or waiting to retry;
  // a stanza that needs one more bounces (resource-constraint). Connection attempts in flight
  // at once; more wait their turn within connect_timeout (docs/security.md "Work").
  std::uint32_t max_links = 10000;
  std::uint32_t max_connecting = 100;
  std::string policy = "open";  // open, allowlist, blocklist
  std::vector<std::string> allowed_domains;
  std::vector<std::string> blocked_domains;
  RetryConfig retry;

  // Authentication policy: by default a peer must present a certificate valid for its
  // domain (SASL EXTERNAL, or dialback over a verified TLS channel). Dialback with an
  // unverified certificate is accepted only when allowed globally or for listed domains.
  bool allow_unverified_dialback = false;
  std::vector<std::string> unverified_dialback_domains;
  std::string dialback_secret;          // empty = generated once and kept in data_dir
  std::string tls_min_version = "1.3";  // "1.2" or "1.3"
  // Outbound connections (links, dialback verification, `check s2s`) to IP-literal domains and
  // to internal addresses (loopback, private, link-local, ...) found in DNS; off by default,
  // for private deployments (docs/security.md).
  bool allow_internal_addresses = false;

  // Abuse prevention (spec S2SRateLimiter); 0 = unlimited. New inbound connections per
  // minute from one remote address, counted when accepted (both ports).
  std::uint32_t connection_rate = 30;
  // Inbound connections not yet carrying an authenticated domain, in total and from one
  // address; more are refused at accept time (docs/security.md "Memory").
  std::uint32_t max_unauthenticated = 1000;
  std::uint32_t max_unauthenticated_per_address = 20;
  // Pacing of what an authenticated domain sends (all its streams together): above a rate,
  // its streams are read more slowly; nothing is dropped. docs/federation.md explains the
  // defaults (a remote room with 1,000 occupants here passes unpaced).
  std::uint32_t stanza_rate = 2000;             // stanzas per second
  std::uint32_t stanza_burst = 10000;           // stanzas at once, above the rate
  std::uint64_t byte_rate = 4 * 1024 * 1024;    // bytes per second
  std::uint64_t byte_burst = 20 * 1024 * 1024;  // bytes at once, above the rate
  Duration disconnect_when_paced_for{0};        // 0 = never disconnect a paced domain
  std::uint64_t bandwidth_limit = 0;            // total S2S bytes per second read (all domains)

  std::size_t max_stanza_size = 512 * 1024;
  Duration handshake_timeout{std::chrono::seconds(30)};
  std::size_t queue_size = 1000;  // stanzas waiting per remote domain
  // Output queued on one server stream and not yet written; beyond it, or with no write
  // progress for write_stall_timeout, an outbound link fails over (its stanzas are sent
  // again on a new link or bounced) and an inbound stream is closed (docs/security.md).
  std::uint64_t max_write_queue = 8 * 1024 * 1024;
  Duration write_stall_timeout{std::chrono::seconds(60)};
  // Stanzas a peer may leave unacknowledged (XEP-0198) on one outbound stream, in number
  // and in bytes; beyond either the link fails over the same way.
  std::uint64_t max_unacked = 10000;
  std::uint64_t max_unacked_bytes = 16 * 1024 * 1024;
  Duration ping_interval{std::chrono::seconds(60)};  // XEP-0199 health checks on idle links
};

struct MetricsConfig {
  bool enabled = true;
  std::string address = "127.0.0.1";
  std::uint16_t port = 5280;
  std::size_t max_domains = 100;  // remote domains with their own label; the rest "other"
};

struct DnsConfig {
  std::vector<std::string> nameservers;  // "127.0.0.53" or "127.0.0.53:5353"; empty = system
};

// Multi-user chat (XEP-0045): one room service per served domain, at "<subdomain>.<domain>".
struct MucConfig {
  bool enabled = true;
  std::string subdomain = "conference";
  std::string room_creation = "local";     // "local" (users of this server) or "anyone"
  std::uint32_t max_occupants = 200;       // default per room
  std::uint32_t history_size = 20;         // groupchat messages replayed to joining occupants
  std::size_t history_bytes = 256 * 1024;  // their total size per room (the bound that counts)
  // A resource already in a room that joins again gets the history at most this often.
  Duration rejoin_history_interval{std::chrono::seconds(60)};
  // Invitations (XEP-0045 §7.8.2): per message, per user and minute, and the affiliations
  // invitations to members-only rooms may grant per room (docs/security.md, "Work").
  std::uint32_t invitations_per_message = 10;
  std::uint32_t invitations_per_minute = 20;
  std::uint32_t max_affiliations_by_invitation = 1000;
  // Federated identity (spec "Identity Verification"): remote users joining a local room must
  // present a credential signed by their home server; optionally confirmed with it over S2S.
  bool require_credential = false;
  bool verify_with_home_server = true;
  Duration verify_timeout{std::chrono::seconds(10)};
  // Room archives (XEP-0313, with [mam] enabled): whether a new room archives its messages
  // until an owner changes muc#roomconfig_enablearchiving.
  bool archive_by_default = true;
};

// Federated credentials this server issues for its own users ("home server mode").
struct IdentityConfig {
  bool enabled = true;  // issue credentials, answer verify
  Duration credential_lifetime{std::chrono::hours(24)};
  std::string key_file;  // Ed25519 key; empty = data_dir/identity.key
};

// Message archives (XEP-0313) of accounts.
struct MamConfig {
  bool enabled = true;
  // What is archived for an account that set no preferences: "always", "roster", "never".
  std::string default_mode = "always";
  Duration retention{0};                       // older messages are removed; 0 = kept forever
  std::uint64_t max_messages_per_account = 0;  // the oldest beyond it are removed; 0 = no limit
  std::uint32_t max_page_size = 250;           // larger requests get this many
  Duration cleanup_interval{std::chrono::hours(1)};  // how often retention and limits apply
  // Archive copies waiting for the storage thread (with at most 8 MiB): past half of it their
  // senders are read more slowly; past it, copies are not kept.
  std::uint32_t max_pending = 20'000;
};

// Push notifications (XEP-0357) for accounts whose clients are all away.
struct PushConfig {
  bool enabled = true;
  std::uint32_t max_registrations_per_account = 5;  // the oldest is replaced beyond it
  // Message bodies may be sent to app servers, to users who opted in (docs/clients.md).
  bool allow_body = false;
  Duration notify_timeout{std::chrono::seconds(30)};  // unanswered: the registration is disabled
};

// Personal eventing (XEP-0163) on every account: the bounds of what an account may keep.
struct PepServiceConfig {
  bool enabled = true;
  std::size_t max_item_bytes = 196'608;  // a payload as written (avatars are sent in pieces)
  std::uint32_t max_items = 256;         // per node: what "max" means in a node's max_items
  std::size_t max_nodes = 256;           // per account
};

// Contact addresses of the service (XEP-0157), shown in the server's disco#info: URIs
// (mailto:, xmpp:, https:) per kind.
struct ContactConfig {
  std::vector<std::string> abuse;
  std::vector<std::string> admin;
  std::vector<std::string> feedback;
  std::vector<std::string> sales;
  std::vector<std::string> security;
  std::vector<std::string> status;
  std::vector<std::string> support;
};

// STUN and TURN servers for calls (XEP-0215), with time-limited TURN credentials made from a
// secret shared with the TURN server (coturn's use-auth-secret). Off while `host` is empty.
struct TurnConfig {
  std::string host;
  std::uint16_t port = 3478;
  std::uint16_t tls_port = 0;  // TURN over TLS (turns); 0 = not offered
  bool tcp = false;            // STUN and TURN over TCP too
  std::string secret;          // empty: STUN only
  Duration ttl{std::chrono::hours(24)};
};

// The web listener (docs/web.md): XMPP over WebSocket (RFC 7395) and connection discovery
// (XEP-0156), over HTTPS with the clients' certificates, and over plain HTTP on loopback for
// a reverse proxy that encrypts.
struct WebConfig {
  bool enabled = true;
  std::uint16_t port = 5443;                // HTTPS on the server.listen addresses; 0 = off
  std::string plain_address = "127.0.0.1";  // plain HTTP: a loopback address only
  std::uint16_t plain_port = 5380;          // 0 = off
  std::string websocket_path = "/xmpp-websocket";
  // Browser pages (RFC 6455 origins) that may open a WebSocket: empty = the server's own
  // pages only (its host, or public_url); "*" = any.
  std::vector<std::string> allowed_origins;
  // The base URL browsers reach the listener at ("https://chat.example.org"), behind a
  // proxy; empty = taken from each request's Host.
  std::string public_url;
  // The bundled web client (Converse.js, scripts/fetch-web-client) at this path; "" = off.
  std::string client_path = "/chat/";
  // Its files; empty = "web-client" beside the waddle binary.
  std::string client_dir;
};

// HTTP File Upload (XEP-0363), served by the web listener (docs/web.md): slots are asked for
// over XMPP, files PUT to and fetched from the web listener, kept under `path`.
struct UploadConfig {
  bool enabled = true;
  std::string path;  // empty = <data_dir>/uploads
  std::uint64_t max_file_size = 100ull * 1024 * 1024;
  std::uint64_t quota_per_user = 1024ull * 1024 * 1024;       // stored and reserved; 0 = no limit
  std::uint64_t max_total_size = 10ull * 1024 * 1024 * 1024;  // all files together; 0 = none
  Duration expire_after{std::chrono::hours(24 * 30)};         // files older are removed; 0 = kept
  Duration slot_timeout{std::chrono::minutes(5)};             // a slot's PUT must start within this
  // A PUT slower than this on average (with c2s.limits.handshake_timeout as an allowance) is
  // cut off, as is one that sends nothing for that long.
  std::uint64_t min_upload_rate = 10 * 1024;
  bool allow_remote = false;  // users of other servers may ask for slots
  Duration cleanup_interval{std::chrono::hours(1)};
};

// External components (XEP-0114): services such as gateways and bots that connect to their
// own port and answer for a domain of their own, with a shared secret per domain.
struct ComponentsConfig {
  std::vector<std::string> listen{"127.0.0.1"};  // addresses; plain TCP, so private ones
  std::uint16_t port = 5347;                     // listened on when a component is configured
  std::map<std::string, std::string> secrets;    // [components.domains."gw.example.org"]
};

struct Config {
  std::string source;  // file the config came from; empty = embedded default
  // Keys that are accepted but have no effect any more, as "FILE:LINE:COL: KEY: what to do";
  // logged at start-up and on reload, printed by `check config`.
  std::vector<std::string> warnings;
  ServerConfig server;
  TlsConfig tls;
  C2sConfig c2s;
  StorageConfig storage;
  S2sConfig s2s;
  DnsConfig dns;
  MetricsConfig metrics;
  MucConfig muc;
  IdentityConfig identity;
  MamConfig mam;
  PushConfig push;
  PepServiceConfig pep;
  ContactConfig contact;
  TurnConfig turn;
  ComponentsConfig components;
  WebConfig web;
  UploadConfig upload;

  std::string storage_path() const;  // resolved sqlite path
  std::string upload_path() const;   // resolved upload directory
  std::string identity_key_path() const;
  // The room service domain of a served domain ("conference.example.org"); empty when off.
  std::string muc_domain(const std::string& domain) const;
  // Every domain this server answers for: server.domains, their room services, then the
  // external components' domains.
  std::vector<std::string> hosted_domains() const;
  // The write queue bounds in force: as configured, but never below twice the largest
  // stanza a stream can be given to write (from clients or from servers).
  std::uint64_t c2s_write_queue() const;
  // c2s.max_unacked_bytes, never below twice the largest stanza (as the write queues).
  std::uint64_t c2s_unacked_bytes() const;
  std::uint64_t s2s_write_queue() const;
};

// Thrown by load_config; what() reads "FILE:LINE:COL: KEY: problem".
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The embedded default (domain localhost, ./data, port 5222).
Config default_config();
// Parses and validates a TOML file. Throws ConfigError for a missing/unreadable file, a
// syntax error, an unknown key, a wrong type or an out-of-range value.
Config load_config(const std::string& path);
// Same, from text (for tests); `name` is used in messages.
Config parse_config(std::string_view text, const std::string& name);

}  // namespace waddle::core
