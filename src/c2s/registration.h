// In-band registration (XEP-0077) on client streams: before authentication the form and the
// creation of an account (when [c2s] allow_registration is on); once logged in, the account's
// own registration, password change (§3.3) and removal (§3.2).
#pragma once

#include <boost/asio/awaitable.hpp>
#include <string>

#include "c2s/c2s.h"
#include "xml/element.h"

namespace waddle::c2s {

// The answer to a jabber:iq:register IQ before authentication (XEP-0077 §3.1). The stream
// has no address yet, so the reply carries neither 'to' nor 'from'.
boost::asio::awaitable<xml::Element> register_new_account(C2sContext& ctx, const xml::Element& iq,
                                                          const std::string& domain,
                                                          const std::string& remote);

struct OwnAccountReply {
  xml::Element reply;    // to deliver to the user
  bool removed = false;  // the account is gone: its sessions close
};

// A logged-in user's jabber:iq:register IQ about their own account `username`@`domain`.
boost::asio::awaitable<OwnAccountReply> manage_own_account(C2sContext& ctx, const xml::Element& iq,
                                                           const std::string& domain,
                                                           const std::string& username,
                                                           const std::string& remote);

}  // namespace waddle::c2s
