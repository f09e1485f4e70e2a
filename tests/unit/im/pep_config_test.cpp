// PEP node configuration (XEP-0163 on XEP-0060): forms read and refused, the preconditions of
// publish-options (§7.1.5), the access models (§4.5), and the stored text.
#include "im/logic/pep_config.h"

#include <gtest/gtest.h>

#include "xml/parser.h"

namespace waddle::im::logic {
namespace {

// A submitted form with these fields (var, values...).
xml::Element form(std::string_view form_type,
                  const std::vector<std::pair<std::string, std::vector<std::string>>>& fields) {
  xml::Element x("x", "jabber:x:data");
  x.set_attr("type", "submit");
  auto add = [&x](const std::string& var, const std::vector<std::string>& vals) {
    auto& f = x.add_child("field", "jabber:x:data");
    f.set_attr("var", var);
    for (const auto& v : vals) f.add_child("value", "jabber:x:data").add_text(v);
  };
  add("FORM_TYPE", {std::string(form_type)});
  for (const auto& [var, vals] : fields) add(var, vals);
  return x;
}
constexpr std::string_view kOptions = "http://jabber.org/protocol/pubsub#publish-options";
constexpr std::string_view kNodeConfig = "http://jabber.org/protocol/pubsub#node_config";

TEST(PepConfigTest, DefaultsAreThoseOfXep0163) {
  const PepConfig c;
  EXPECT_EQ(c.access, AccessModel::kPresence);
  EXPECT_EQ(c.max_items, 1u);
  EXPECT_TRUE(c.persist_items);
  EXPECT_EQ(c.send_last, SendLast::kOnSubAndPresence);
}

// What OMEMO (XEP-0384) and bookmarks (XEP-0402) clients send as publish-options.
TEST(PepConfigTest, FormsClientsSendAreApplied) {
  PepConfig c;
  EXPECT_FALSE(apply_form(c,
                          form(kOptions, {{"pubsub#access_model", {"open"}},
                                          {"pubsub#max_items", {"max"}},
                                          {"pubsub#persist_items", {"true"}},
                                          {"pubsub#send_last_published_item", {"never"}},
                                          {"pubsub#deliver_notifications", {"1"}},
                                          {"pubsub#publish_model", {"publishers"}}}),
                          PepLimits{64}));
  EXPECT_EQ(c.access, AccessModel::kOpen);
  EXPECT_EQ(c.max_items, 64u);
  EXPECT_EQ(c.send_last, SendLast::kNever);
  EXPECT_FALSE(apply_form(c,
                          form(kNodeConfig, {{"pubsub#access_model", {"roster"}},
                                             {"pubsub#roster_groups_allowed", {"A", "B"}},
                                             {"pubsub#max_items", {"10"}},
                                             {"pubsub#title", {"Avatar"}}}),
                          PepLimits{64}));
  EXPECT_EQ(c.access, AccessModel::kRoster);
  EXPECT_EQ(c.roster_groups, (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(c.max_items, 10u);
  EXPECT_EQ(c.title, "Avatar");
}

TEST(PepConfigTest, BadFormsAreRefusedAndChangeNothing) {
  const PepConfig before;
  for (const auto& [var, value] : std::vector<std::pair<std::string, std::string>>{
           {"pubsub#access_model", "authorize"},
           {"pubsub#max_items", "0"},
           {"pubsub#max_items", "65"},
           {"pubsub#max_items", "ten"},
           {"pubsub#persist_items", "yes"},
           {"pubsub#send_last_published_item", "always"},
           {"pubsub#deliver_payloads", "false"},
           {"pubsub#publish_model", "open"},
           {"pubsub#unknown", "x"}}) {
    PepConfig c;
    const auto error =
        apply_form(c, form(kOptions, {{"pubsub#max_items", {"5"}}, {var, {value}}}), PepLimits{64});
    ASSERT_TRUE(error.has_value()) << var << "=" << value;
    EXPECT_EQ(error->condition, core::StanzaError::kNotAcceptable) << var;
    EXPECT_EQ(c, before) << var << ": a refused form changes nothing";
  }
  PepConfig c;
  const auto error = apply_form(c, form("urn:other", {}), PepLimits{});
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->condition, core::StanzaError::kBadRequest);
}

// XEP-0060 §7.1.5: publish-options are preconditions on an existing node.
TEST(PepConfigTest, PreconditionsHoldOnlyWhenEveryOptionIsTheNodes) {
  PepConfig node;
  node.access = AccessModel::kOpen;
  node.max_items = 64;
  const PepLimits limits{64};
  EXPECT_TRUE(preconditions_met(node, form(kOptions, {}), limits));
  EXPECT_TRUE(preconditions_met(
      node, form(kOptions, {{"pubsub#access_model", {"open"}}, {"pubsub#max_items", {"max"}}}),
      limits));
  EXPECT_FALSE(
      preconditions_met(node, form(kOptions, {{"pubsub#access_model", {"presence"}}}), limits));
  EXPECT_FALSE(preconditions_met(node, form(kOptions, {{"pubsub#max_items", {"1"}}}), limits));
  EXPECT_FALSE(preconditions_met(node, form(kOptions, {{"pubsub#bogus", {"1"}}}), limits));
}

TEST(PepConfigTest, AccessModels) {
  PepConfig c;
  const Reader owner{true, false, false, {}}, subscriber{false, true, true, {"Friends"}},
      in_roster{false, false, true, {"Work"}}, stranger{};
  auto readers = [&](AccessModel a) {
    c.access = a;
    return std::vector<bool>{may_read(c, owner), may_read(c, subscriber), may_read(c, in_roster),
                             may_read(c, stranger)};
  };
  EXPECT_EQ(readers(AccessModel::kOpen), (std::vector<bool>{true, true, true, true}));
  EXPECT_EQ(readers(AccessModel::kPresence), (std::vector<bool>{true, true, false, false}));
  c.roster_groups = {"Work"};
  EXPECT_EQ(readers(AccessModel::kRoster), (std::vector<bool>{true, false, true, false}));
  EXPECT_EQ(readers(AccessModel::kWhitelist), (std::vector<bool>{true, false, false, false}));
}

TEST(PepConfigTest, TheFormShowsTheConfigurationAndReadsBack) {
  PepConfig c;
  c.access = AccessModel::kRoster;
  c.max_items = 7;
  c.roster_groups = {"A"};
  c.title = "t";
  xml::Element x = config_form(c);
  EXPECT_EQ(x.attr("type"), "form");
  x.set_attr("type", "submit");
  PepConfig back;
  EXPECT_FALSE(apply_form(back, x, PepLimits{64}));
  EXPECT_EQ(back, c);
}

TEST(PepConfigTest, StoredTextRoundTripsAndBadTextIsRefused) {
  PepConfig c;
  c.access = AccessModel::kWhitelist;
  c.max_items = 3;
  c.persist_items = false;
  c.send_last = SendLast::kOnSub;
  c.notify_retract = false;
  c.roster_groups = {"x", "y z"};
  c.title = "My node";
  EXPECT_EQ(decode(encode(c)), c);
  EXPECT_EQ(decode(""), PepConfig{});
  EXPECT_FALSE(decode("access=authorize\n").has_value());
  EXPECT_FALSE(decode("max_items=0\n").has_value());
  EXPECT_FALSE(decode("what=ever\n").has_value());
  EXPECT_FALSE(decode("no equals sign\n").has_value());
}

}  // namespace
}  // namespace waddle::im::logic
