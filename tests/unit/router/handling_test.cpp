// Handling::Resume: work that continues a stanza's handling outside its scope keeps the
// stanza held for the handlers it calls.
#include "router/handling.h"

#include <gtest/gtest.h>

#include <memory>

namespace waddle::router {
namespace {

TEST(HandlingResume, HandlersInsideHoldTheResumedStanza) {
  auto handling = std::make_shared<Handling>();
  std::shared_ptr<void> waiting;  // kept while a lookup runs
  {
    Handling::Scope scope(handling);
    waiting = Handling::hold();
  }
  EXPECT_EQ(handling->handled(), 0u);
  std::shared_ptr<void> stored;  // e.g. an offline store started after the lookup
  {
    Handling::Resume resume(std::move(waiting));
    stored = Handling::hold();
    ASSERT_TRUE(stored);
  }
  EXPECT_FALSE(Handling::hold());  // nothing resumed any more
  EXPECT_EQ(handling->handled(), 0u);
  stored.reset();
  EXPECT_EQ(handling->handled(), 1u);
}

TEST(HandlingResume, ScopeOpenedInsideTakesPrecedence) {
  auto first = std::make_shared<Handling>();
  auto second = std::make_shared<Handling>();
  std::shared_ptr<void> waiting;
  {
    Handling::Scope scope(first);
    waiting = Handling::hold();
  }
  {
    Handling::Resume resume(waiting);
    {
      Handling::Scope inner(second);
      auto h = Handling::hold();
      EXPECT_NE(h, waiting);
    }
    EXPECT_EQ(Handling::hold(), waiting);
  }
  waiting.reset();
  EXPECT_EQ(first->handled(), 1u);
  EXPECT_EQ(second->handled(), 1u);
}

TEST(HandlingResume, EmptyHoldResumesNothing) {
  Handling::Resume resume({});
  EXPECT_FALSE(Handling::hold());
}

}  // namespace
}  // namespace waddle::router
