// The IQs the server answers itself: to its domain (disco#info and #items XEP-0030, ping
// XEP-0199, version XEP-0092, urn:waddle:identity), on behalf of an account (§8.5.2.1.3), and
// a client's IQs to its own account (roster, disco, ping).
#pragma once

#include <boost/asio/awaitable.hpp>

#include "core/jid.h"
#include "im/context.h"
#include "im/roster.h"
#include "xml/element.h"

namespace waddle::im {

class ServerIqs {
 public:
  ServerIqs(const Context& ctx, Roster& roster) : ctx_(ctx), roster_(roster) {}

  // An IQ to a local domain.
  void to_domain(xml::Element iq);
  // An IQ to another account's bare JID: the server answers on its behalf.
  boost::asio::awaitable<void> to_account(xml::Element iq, core::Jid bare);
  // An IQ from a client to its own account (no 'to', or its bare JID).
  boost::asio::awaitable<void> own_account(xml::Element iq, core::Jid from);
  // The <c/> (XEP-0115) of this server's disco#info for `domain`.
  xml::Element server_caps(std::string_view domain) const;

 private:
  xml::Element disco_info_result(const xml::Element& iq, bool server) const;
  xml::Element disco_items_result(const xml::Element& iq) const;
  xml::Element version_result(const xml::Element& iq) const;
  void external_services(xml::Element iq);

  const Context& ctx_;
  Roster& roster_;
};

}  // namespace waddle::im
