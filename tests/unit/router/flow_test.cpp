// Backpressure between queues and the sources feeding them (router/flow.h).
#include "router/flow.h"

#include <gtest/gtest.h>

#include <memory>

namespace waddle::router {
namespace {

TEST(FlowTest, OutsideAScopeNothingCanWait) {
  Congestion queue;
  EXPECT_FALSE(Flow::slow_down(queue));
  EXPECT_EQ(queue.waiting(), 0u);
}

TEST(FlowTest, TheSourceOfTheStanzaBeingRoutedWaitsUntilTheQueueDrains) {
  int resumed = 0;
  auto source = std::make_shared<Flow>([&] { ++resumed; });
  Congestion queue;
  {
    Flow::Scope routing(*source);
    EXPECT_TRUE(Flow::slow_down(queue));
    EXPECT_TRUE(Flow::slow_down(queue));  // the rest of one stanza's fan-out: still one wait
  }
  EXPECT_TRUE(source->paused());
  EXPECT_EQ(queue.waiting(), 1u);
  EXPECT_FALSE(Flow::slow_down(queue));  // the scope has ended
  queue.relieve();
  EXPECT_FALSE(source->paused());
  EXPECT_EQ(resumed, 1);
  queue.relieve();  // nothing waits any more
  EXPECT_EQ(resumed, 1);
}

TEST(FlowTest, ASourceThatWaitsOnlyBrieflyIsRefusedByAQueueThatMayTakeLong) {
  int resumed = 0;
  auto client = std::make_shared<Flow>([&] { ++resumed; }, Wait::kBrief);
  Congestion link, storage;
  {
    Flow::Scope routing(*client);
    EXPECT_FALSE(Flow::slow_down(link));  // a link being set up: the stanza is refused
    EXPECT_TRUE(Flow::slow_down(storage, Wait::kBrief));
  }
  EXPECT_EQ(link.waiting(), 0u);
  EXPECT_TRUE(client->paused());
  storage.relieve();
  EXPECT_FALSE(client->paused());
  EXPECT_EQ(resumed, 1);
  // A patient source (an inbound server stream) waits for either.
  auto peer = std::make_shared<Flow>([] {});
  Flow::Scope routing(*peer);
  EXPECT_TRUE(Flow::slow_down(link));
  EXPECT_TRUE(Flow::slow_down(storage, Wait::kBrief));
}

TEST(FlowTest, ASourceWaitingForTwoQueuesResumesWhenBothHaveDrained) {
  int resumed = 0;
  auto source = std::make_shared<Flow>([&] { ++resumed; });
  Congestion first, second;
  {
    Flow::Scope routing(*source);
    ASSERT_TRUE(Flow::slow_down(first));
    ASSERT_TRUE(Flow::slow_down(second));
  }
  first.relieve();
  EXPECT_TRUE(source->paused());
  EXPECT_EQ(resumed, 0);
  second.relieve();
  EXPECT_FALSE(source->paused());
  EXPECT_EQ(resumed, 1);
}

TEST(FlowTest, AQueueThatGoesAwayReleasesItsSources) {
  int resumed = 0;
  auto source = std::make_shared<Flow>([&] { ++resumed; });
  {
    Congestion queue;
    Flow::Scope routing(*source);
    ASSERT_TRUE(Flow::slow_down(queue));
  }
  EXPECT_FALSE(source->paused());
  EXPECT_EQ(resumed, 1);
}

TEST(FlowTest, ASourceThatHasEndedIsForgotten) {
  Congestion queue;
  {
    auto source = std::make_shared<Flow>([] { FAIL() << "an ended source is not resumed"; });
    Flow::Scope routing(*source);
    ASSERT_TRUE(Flow::slow_down(queue));
  }
  queue.relieve();
  EXPECT_EQ(queue.waiting(), 0u);
}

TEST(FlowTest, NestedScopesRestoreTheOuterSource) {
  auto outer = std::make_shared<Flow>([] {});
  auto inner = std::make_shared<Flow>([] {});
  Congestion queue;
  Flow::Scope a(*outer);
  {
    Flow::Scope b(*inner);
    ASSERT_TRUE(Flow::slow_down(queue));
  }
  Congestion other;
  ASSERT_TRUE(Flow::slow_down(other));
  EXPECT_TRUE(inner->paused());
  EXPECT_TRUE(outer->paused());
  EXPECT_EQ(queue.waiting(), 1u);
  EXPECT_EQ(other.waiting(), 1u);
}

// Work a stanza leaves for later (a room posts its answers) is routed in its source's name,
// and counts as pending until it is done.
TEST(FlowTest, WorkLeftForLaterIsCarriedInTheSourcesName) {
  EXPECT_EQ(Flow::carry(), nullptr);  // outside a scope: nobody's
  auto source = std::make_shared<Flow>([] {});
  std::shared_ptr<Flow> later, again;
  {
    Flow::Scope routing(*source);
    later = Flow::carry();
    again = Flow::carry();
  }
  ASSERT_EQ(later.get(), source.get());
  EXPECT_EQ(source->pending(), 2u);
  Congestion queue;
  {
    Flow::Scope in_its_name(*later);
    EXPECT_TRUE(Flow::slow_down(queue));
  }
  EXPECT_TRUE(source->paused());
  auto copy = later;
  later.reset();
  EXPECT_EQ(source->pending(), 2u);  // a copy still holds it
  copy.reset();
  again.reset();
  EXPECT_EQ(source->pending(), 0u);
}

}  // namespace
}  // namespace waddle::router
