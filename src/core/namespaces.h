// Every XML namespace Waddle speaks, in one list. Code refers to them as `ns::kName` (within
// waddle::xml and waddle::muc, `xml::ns` and `muc::ns` name this same list).
#pragma once

#include <string_view>

namespace waddle::ns {

// XML itself.
inline constexpr std::string_view kXml = "http://www.w3.org/XML/1998/namespace";

// RFC 6120 streams and their negotiation.
inline constexpr std::string_view kClient = "jabber:client";
inline constexpr std::string_view kServer = "jabber:server";
inline constexpr std::string_view kComponentAccept = "jabber:component:accept";  // XEP-0114
inline constexpr std::string_view kStream = "http://etherx.jabber.org/streams";
inline constexpr std::string_view kStreams = "urn:ietf:params:xml:ns:xmpp-streams";  // errors
inline constexpr std::string_view kStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas";  // errors
inline constexpr std::string_view kTls = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr std::string_view kSasl = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr std::string_view kBind = "urn:ietf:params:xml:ns:xmpp-bind";
inline constexpr std::string_view kSession = "urn:ietf:params:xml:ns:xmpp-session";

// Server Dialback (XEP-0220).
inline constexpr std::string_view kDialback = "jabber:server:dialback";
inline constexpr std::string_view kDialbackFeature = "urn:xmpp:features:dialback";

// Stream management (XEP-0198).
inline constexpr std::string_view kSm = "urn:xmpp:sm:3";
// Client State Indication (XEP-0352), chat state notifications (XEP-0085).
inline constexpr std::string_view kCsi = "urn:xmpp:csi:0";
inline constexpr std::string_view kChatStates = "http://jabber.org/protocol/chatstates";
inline constexpr std::string_view kHints = "urn:xmpp:hints";  // XEP-0334

// RFC 6121 and server IQs.
inline constexpr std::string_view kRoster = "jabber:iq:roster";
inline constexpr std::string_view kRegister = "jabber:iq:register";
inline constexpr std::string_view kRegisterFeature = "http://jabber.org/features/iq-register";
inline constexpr std::string_view kDiscoInfo = "http://jabber.org/protocol/disco#info";
inline constexpr std::string_view kDiscoItems = "http://jabber.org/protocol/disco#items";
inline constexpr std::string_view kPing = "urn:xmpp:ping";
inline constexpr std::string_view kVersion = "jabber:iq:version";
inline constexpr std::string_view kDelay = "urn:xmpp:delay";
inline constexpr std::string_view kOffline = "msgoffline";
inline constexpr std::string_view kData = "jabber:x:data";
// Message archives (XEP-0313), stanza ids (XEP-0359), result set management (XEP-0059).
inline constexpr std::string_view kMam = "urn:xmpp:mam:2";
inline constexpr std::string_view kMamExtended = "urn:xmpp:mam:2#extended";
inline constexpr std::string_view kSid = "urn:xmpp:sid:0";
inline constexpr std::string_view kRsm = "http://jabber.org/protocol/rsm";
// Payloads worth archiving without a body: encrypted (XEP-0027, XEP-0373), invitations
// (XEP-0249).
inline constexpr std::string_view kPgpEncrypted = "jabber:x:encrypted";
inline constexpr std::string_view kOpenPgp = "urn:xmpp:openpgp:0";
inline constexpr std::string_view kConferenceInvite = "jabber:x:conference";
inline constexpr std::string_view kVcardTemp = "vcard-temp";                      // XEP-0054
inline constexpr std::string_view kVcard4 = "urn:ietf:params:xml:ns:vcard-4.0";   // XEP-0292
inline constexpr std::string_view kPubsub = "http://jabber.org/protocol/pubsub";  // XEP-0060
// Roster versioning and pre-approval stream features (RFC 6121 §2.6, §3.4).
inline constexpr std::string_view kRosterVerFeature = "urn:xmpp:features:rosterver";
inline constexpr std::string_view kPreApprovalFeature = "urn:xmpp:features:pre-approval";

// Message Carbons (XEP-0280), forwarding (XEP-0297), processing hints (XEP-0334).
inline constexpr std::string_view kCarbons = "urn:xmpp:carbons:2";
inline constexpr std::string_view kForward = "urn:xmpp:forward:0";

// Blocking Command (XEP-0191) and Spam Reporting (XEP-0377; :0 is its earlier version).
inline constexpr std::string_view kBlocking = "urn:xmpp:blocking";
inline constexpr std::string_view kBlockingErrors = "urn:xmpp:blocking:errors";
inline constexpr std::string_view kReporting = "urn:xmpp:reporting:1";
inline constexpr std::string_view kReportingSpam = "urn:xmpp:reporting:spam";
inline constexpr std::string_view kReportingAbuse = "urn:xmpp:reporting:abuse";
inline constexpr std::string_view kReporting0 = "urn:xmpp:reporting:0";
inline constexpr std::string_view kReporting0Spam = "urn:xmpp:reporting:reason:spam:0";
inline constexpr std::string_view kReporting0Abuse = "urn:xmpp:reporting:reason:abuse:0";

// Push notifications (XEP-0357): the commands, the summary form of a notification, and the
// publish-options form (XEP-0060 §7.1.5) given at enable. kPushIncludeBody is Waddle's own
// field of that form: the user's opt-in to message bodies in notifications (never forwarded).
inline constexpr std::string_view kPush = "urn:xmpp:push:0";
inline constexpr std::string_view kHttpUpload = "urn:xmpp:http:upload:0";  // XEP-0363
inline constexpr std::string_view kPushSummary = "urn:xmpp:push:summary";
inline constexpr std::string_view kPubsubPublishOptions =
    "http://jabber.org/protocol/pubsub#publish-options";
inline constexpr std::string_view kPushIncludeBody = "urn:waddle:push:0#include-body";

// Rooms (XEP-0045 and friends).
inline constexpr std::string_view kMuc = "http://jabber.org/protocol/muc";
inline constexpr std::string_view kMucUser = "http://jabber.org/protocol/muc#user";
inline constexpr std::string_view kMucAdmin = "http://jabber.org/protocol/muc#admin";
inline constexpr std::string_view kMucOwner = "http://jabber.org/protocol/muc#owner";
inline constexpr std::string_view kMucRoomConfig = "http://jabber.org/protocol/muc#roomconfig";
inline constexpr std::string_view kMucRoomInfo = "http://jabber.org/protocol/muc#roominfo";
inline constexpr std::string_view kMucSelfPing =
    "http://jabber.org/protocol/muc#self-ping-optimization";
inline constexpr std::string_view kOccupantId = "urn:xmpp:occupant-id:0";
// Waddle's own: persistent room state in storage.
inline constexpr std::string_view kMucStore = "urn:waddle:muc:store";

// Federated identity credentials (Waddle's urn:waddle:identity).
inline constexpr std::string_view kIdentity = "urn:waddle:identity";

}  // namespace waddle::ns
