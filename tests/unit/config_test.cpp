#include <raft/config.hpp>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace raft {
namespace {

Config three() {
  Config c;
  c.cluster_id = 100;
  EXPECT_TRUE(c.add_node(1, "http://a:1"));
  EXPECT_TRUE(c.add_node(2, "http://b:2"));
  EXPECT_TRUE(c.add_node(3, "http://c:3"));
  return c;
}

TEST(Config, NodeByIdAndUrl) {
  Config c = three();
  ASSERT_NE(c.node_by_id(2), nullptr);
  EXPECT_EQ(c.node_by_id(2)->url, "http://b:2");
  EXPECT_EQ(c.node_by_id(4), nullptr);
  ASSERT_NE(c.node_by_url("http://c:3"), nullptr);
  EXPECT_EQ(c.node_by_url("http://c:3")->id, 3u);
  EXPECT_EQ(c.node_by_url("http://d:4"), nullptr);
  EXPECT_EQ(c.max_node_id, 3u);
}

TEST(Config, AddNodeErrors) {
  Config c = three();
  EXPECT_EQ(c.add_node(0, "http://x").error(), errc::invalid_node_id);
  EXPECT_EQ(c.add_node(9, "").error(), errc::node_url_required);
  EXPECT_EQ(c.add_node(2, "http://x").error(), errc::duplicate_node_id);
  EXPECT_EQ(c.add_node(9, "http://a:1").error(), errc::duplicate_node_url);
  EXPECT_EQ(c.nodes.size(), 3u);
}

TEST(Config, RemoveNode) {
  Config c = three();
  ASSERT_TRUE(c.remove_node(2));
  EXPECT_EQ(c.node_by_id(2), nullptr);
  EXPECT_EQ(c.remove_node(2).error(), errc::node_not_found);
  EXPECT_EQ(c.max_node_id, 3u);  // ids are never reused
}

TEST(Config, RemoveNodeRemembersTheRemovedIdAndUrl) {
  Config c = three();
  ASSERT_TRUE(c.remove_node(2));
  ASSERT_EQ(c.removed.size(), 1u);
  EXPECT_EQ(c.removed[0], (ConfigNode{2, "http://b:2"}));
  EXPECT_TRUE(c.was_removed(2, "http://b:2"));
  EXPECT_FALSE(c.was_removed(2, "http://x:9"));  // the id with another URL: not that node
  EXPECT_FALSE(c.was_removed(1, "http://a:1"));
}

TEST(Config, RemovedListKeepsOnlyTheMostRecent) {
  Config c;
  for (std::uint64_t i = 1; i <= Config::kRemovedMax + 3; ++i) ASSERT_TRUE(c.add_node(i, "http://n" + std::to_string(i)));
  for (std::uint64_t i = 1; i <= Config::kRemovedMax + 2; ++i) ASSERT_TRUE(c.remove_node(i));
  ASSERT_EQ(c.removed.size(), Config::kRemovedMax);
  EXPECT_EQ(c.removed.front().id, 3u);  // 1 and 2 forgotten, oldest first
  EXPECT_EQ(c.removed.back().id, Config::kRemovedMax + 2);
  EXPECT_FALSE(c.was_removed(1, "http://n1"));
  // Still a valid configuration after a round trip.
  auto back = config_from_json(to_json(c));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, c);
}

TEST(ConfigDecoder, RemovedRoundTripsAndIsOptional) {
  Config c = three();
  c.index = 9;
  ASSERT_TRUE(c.remove_node(3));
  const std::string json = to_json(c);
  EXPECT_EQ(json,
            R"({"clusterID":100,"index":9,"maxNodeID":3,"nodes":[{"id":1,"url":"http://a:1"},{"id":2,"url":"http://b:2"}],)"
            R"("removed":[{"id":3,"url":"http://c:3"}]})");
  auto back = config_from_json(json);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, c);
  // Written before the field existed: no "removed", an empty list.
  auto old = config_from_json(R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":[{"id":1,"url":"u"}]})");
  ASSERT_TRUE(old);
  EXPECT_TRUE(old->removed.empty());
}

// A node's join token (ConfigNode::join_token) follows it into `removed`,
// round-trips as "joinToken" (absent when 0), and join_was_removed matches
// only the token and the URL together.
TEST(Config, JoinTokenFollowsARemovedNodeAndRoundTrips) {
  Config c = three();
  ASSERT_TRUE(c.add_node(4, "http://d:4", 0xabcdef0123456789ull));
  const std::string with_member = to_json(c);
  EXPECT_NE(with_member.find(R"({"id":4,"url":"http://d:4","joinToken":12379813738877118345})"), std::string::npos)
      << with_member;
  EXPECT_EQ(with_member.find(R"("id":1,"url":"http://a:1","joinToken")"), std::string::npos) << "0 is written";
  EXPECT_FALSE(c.join_was_removed("http://d:4", 0xabcdef0123456789ull));  // still a member
  ASSERT_TRUE(c.remove_node(4));
  EXPECT_EQ(c.removed.back(), (ConfigNode{4, "http://d:4", 0xabcdef0123456789ull}));
  EXPECT_TRUE(c.join_was_removed("http://d:4", 0xabcdef0123456789ull));
  EXPECT_FALSE(c.join_was_removed("http://d:4", 0xabcdef0123456788ull));  // a fresh node's token
  EXPECT_FALSE(c.join_was_removed("http://x:9", 0xabcdef0123456789ull));  // the token at another URL
  ASSERT_TRUE(c.remove_node(3));  // removed without a token
  EXPECT_FALSE(c.join_was_removed("http://c:3", 0)) << "0 means no token and matches nothing";
  auto back = config_from_json(to_json(c));
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_EQ(*back, c);
  const std::string head = R"({"clusterID":1,"index":1,"maxNodeID":3,"nodes":[{"id":1,"url":"u")";
  for (const char* bad : {R"(,"joinToken":-1}]})", R"(,"joinToken":"7"}]})", R"(,"joinToken":1.5}]})"})
    EXPECT_EQ(config_from_json(head + bad).error(), errc::invalid_config) << bad;
  EXPECT_EQ(config_from_json(head + R"(,"joinToken":7}]})")->nodes[0].join_token, 7u);
  EXPECT_EQ(config_from_json(R"({"clusterID":1,"index":1,"maxNodeID":3,"nodes":[],"removed":[{"id":2,"url":"v","joinToken":"x"}]})")
                .error(),
            errc::invalid_config);
}

TEST(ConfigDecoder, RejectsImpossibleRemovedEntries) {
  const std::string head = R"({"clusterID":1,"index":1,"maxNodeID":3,"nodes":[{"id":1,"url":"u"}],"removed":)";
  for (const char* bad : {
           R"({})",                        // not an array
           R"([1])",                       // not an object
           R"([{"id":2}])",                // no url
           R"([{"id":2,"url":""}])",       // empty url
           R"([{"id":0,"url":"v"}])",      // id 0
           R"([{"id":4,"url":"v"}])",      // never handed out (> maxNodeID)
           R"([{"id":1,"url":"v"}])",      // still a member: ids are not reused
           R"([{"id":-2,"url":"v"}])",     // negative
           R"([{"id":2,"url":7}])",        // url not a string
       }) {
    EXPECT_EQ(config_from_json(head + bad + "}").error(), errc::invalid_config) << bad;
  }
  std::string many = "[";
  for (std::size_t i = 0; i <= Config::kRemovedMax; ++i) many += std::string(i ? "," : "") + R"({"id":2,"url":"v"})";
  many += "]";
  EXPECT_EQ(config_from_json(head + many + "}").error(), errc::invalid_config) << "more than kRemovedMax";
  EXPECT_TRUE(config_from_json(head + R"([{"id":2,"url":"v"},{"id":3,"url":"w"}])" + "}"));
}

TEST(ConfigEncoder, ExactJson) {
  Config c;
  c.cluster_id = 1000;
  c.index = 4;
  ASSERT_TRUE(c.add_node(1, "http://localhost:8000"));
  std::string out;
  StringWriter w(out);
  ASSERT_TRUE(ConfigEncoder(w).encode(c));
  EXPECT_EQ(out,
            R"({"clusterID":1000,"index":4,"maxNodeID":1,"nodes":[{"id":1,"url":"http://localhost:8000"}]})");
}

TEST(ConfigDecoder, RoundTrip) {
  Config c = three();
  c.index = 77;
  c.max_node_id = 10;
  std::string json = to_json(c);
  StringReader r(json);
  Config d;
  ASSERT_TRUE(ConfigDecoder(r).decode(d));
  EXPECT_EQ(d, c);
}

TEST(ConfigDecoder, RejectsBadInput) {
  const char* bad[] = {
      "",
      "{",
      "[]",
      "null",
      R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":[]} x)",                   // trailing garbage
      R"({"clusterID":"1","index":1,"maxNodeID":1,"nodes":[]})",                    // wrong type
      R"({"clusterID":-1,"index":1,"maxNodeID":1,"nodes":[]})",                     // negative
      R"({"index":1,"maxNodeID":1,"nodes":[]})",                                    // missing field
      R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":{}})",                      // nodes not array
      R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":[{"id":1}]})",              // node without url
      R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":[{"id":1.5,"url":"u"}]})",  // fractional id
      R"({"clusterID":1,"index":1,"maxNodeID":0,"nodes":[{"id":1,"url":"u"}]})",    // max below ids
  };
  for (const char* s : bad) {
    auto r = config_from_json(s);
    ASSERT_FALSE(r) << s;
    EXPECT_EQ(r.error(), errc::invalid_config) << s;
  }
}

TEST(Config, LearnersArePromotedAndCountedApart) {
  Config c = three();
  ASSERT_TRUE(c.add_node(4, "http://d:4", 0, true));
  EXPECT_EQ(c.voter_count(), 3u);
  EXPECT_FALSE(c.is_voter(4));
  EXPECT_TRUE(c.is_voter(1));
  EXPECT_FALSE(c.is_voter(9));  // not a member
  EXPECT_EQ(c.promote(1).error(), errc::invalid_argument);  // a voter already
  EXPECT_EQ(c.promote(9).error(), errc::node_not_found);
  ASSERT_TRUE(c.promote(4));
  EXPECT_TRUE(c.is_voter(4));
  EXPECT_EQ(c.voter_count(), 4u);
}

TEST(Config, VotersAreDemotedButNeverTheLast) {
  Config c = three();
  ASSERT_TRUE(c.add_node(4, "http://d:4", 0, true));
  EXPECT_EQ(c.demote(4).error(), errc::invalid_argument);  // a learner already
  EXPECT_EQ(c.demote(9).error(), errc::node_not_found);
  ASSERT_TRUE(c.demote(3));
  EXPECT_FALSE(c.is_voter(3));
  EXPECT_EQ(c.voter_count(), 2u);
  ASSERT_TRUE(c.demote(2));
  EXPECT_EQ(c.demote(1).error(), errc::invalid_argument);  // the last voter
  EXPECT_TRUE(c.is_voter(1));
  EXPECT_EQ(c.voter_count(), 1u);
}

// set_voters' two steps: C_old,new keeps the old voters apart, C_new
// alone drops them. Members not among the new voters become learners.
TEST(Config, EnterJointKeepsTheOldVotersUntilLeft) {
  Config c = three();
  ASSERT_TRUE(c.add_node(4, "http://d:4", 0, true));
  ASSERT_TRUE(c.add_node(5, "http://e:5", 0, true));
  EXPECT_FALSE(c.joint());
  ASSERT_TRUE(c.enter_joint({5, 4, 1}));
  EXPECT_TRUE(c.joint());
  EXPECT_EQ(c.outgoing_voters, (std::vector<std::uint64_t>{1, 2, 3}));
  for (std::uint64_t id : {1, 4, 5}) EXPECT_TRUE(c.is_voter(id)) << id;
  for (std::uint64_t id : {2, 3}) {
    EXPECT_FALSE(c.is_voter(id)) << id;
    EXPECT_TRUE(c.node_by_id(id)->learner) << id;
    EXPECT_TRUE(c.is_outgoing_voter(id)) << id;
  }
  EXPECT_FALSE(c.is_outgoing_voter(4));
  EXPECT_EQ(c.voter_count(), 3u);
  // An outgoing voter stays a member until C_new.
  EXPECT_EQ(c.remove_node(2).error(), errc::invalid_argument);
  EXPECT_EQ(c.enter_joint({1}).error(), errc::invalid_argument);  // joint already
  ASSERT_TRUE(c.leave_joint());
  EXPECT_FALSE(c.joint());
  EXPECT_FALSE(c.is_outgoing_voter(2));
  EXPECT_EQ(c.leave_joint().error(), errc::invalid_argument);
  ASSERT_TRUE(c.remove_node(2));
}

TEST(Config, EnterJointRefusesBadVoterSets) {
  Config c = three();
  const Config before = c;
  EXPECT_EQ(c.enter_joint({}).error(), errc::invalid_argument);
  EXPECT_EQ(c.enter_joint({1, 0}).error(), errc::invalid_argument);
  EXPECT_EQ(c.enter_joint({2, 1, 2}).error(), errc::invalid_argument);
  EXPECT_EQ(c.enter_joint({1, 9}).error(), errc::node_not_found);
  EXPECT_EQ(c, before);  // a refused change changes nothing
}

// "outgoingVoters" only in a joint configuration: the others keep their
// exact JSON; it reads back, and impossible lists are refused.
TEST(ConfigDecoder, OutgoingVotersRoundTripAndAreOptional) {
  Config c = three();
  ASSERT_TRUE(c.add_node(4, "http://d:4", 0, true));
  EXPECT_EQ(to_json(c).find("outgoingVoters"), std::string::npos);
  ASSERT_TRUE(c.enter_joint({3, 4}));
  const std::string json = to_json(c);
  EXPECT_NE(json.find(R"("outgoingVoters":[1,2,3])"), std::string::npos) << json;
  auto d = config_from_json(json);
  ASSERT_TRUE(d) << d.error().message();
  EXPECT_EQ(*d, c);
}

TEST(ConfigDecoder, RejectsBadOutgoingVoters) {
  const std::string head = R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":"u"},{"id":2,"url":"v","learner":true}],)";
  for (const char* tail : {
           R"("outgoingVoters":[]})",       // joint with no old voters
           R"("outgoingVoters":[3]})",      // not a member
           R"("outgoingVoters":[2,1]})",    // not ascending
           R"("outgoingVoters":[1,1]})",    // twice
           R"("outgoingVoters":[0]})",
           R"("outgoingVoters":[-1]})",
           R"("outgoingVoters":["1"]})",
           R"("outgoingVoters":1})",
       }) {
    EXPECT_EQ(config_from_json(head + tail).error(), errc::invalid_config) << tail;
  }
  ASSERT_TRUE(config_from_json(head + R"("outgoingVoters":[1,2]})"));
}

TEST(Config, BindTokenOnlyOnceAndNeverZero) {
  Config c = three();
  EXPECT_EQ(c.bind_token(9, 5).error(), errc::node_not_found);
  EXPECT_EQ(c.bind_token(2, 0).error(), errc::invalid_argument);
  ASSERT_TRUE(c.bind_token(2, 5));
  EXPECT_EQ(c.node_by_id(2)->join_token, 5u);
  EXPECT_EQ(c.bind_token(2, 6).error(), errc::invalid_argument);
  EXPECT_EQ(c.node_by_id(2)->join_token, 5u);
}

// "learner" is written only for learners, so configurations of voters keep
// the seed's exact JSON, and read back.
TEST(ConfigDecoder, LearnerFlagRoundTripsAndIsOptional) {
  Config c = three();
  ASSERT_TRUE(c.add_node(4, "http://d:4", 0, true));
  const std::string json = to_json(c);
  EXPECT_NE(json.find(R"({"id":4,"url":"http://d:4","learner":true})"), std::string::npos) << json;
  EXPECT_EQ(json.find(R"("id":1,"url":"http://a:1","learner")"), std::string::npos) << json;
  auto d = config_from_json(json);
  ASSERT_TRUE(d);
  EXPECT_EQ(*d, c);
  auto explicit_voter = config_from_json(
      R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":"u"},{"id":2,"url":"v","learner":false}]})");
  ASSERT_TRUE(explicit_voter);
  EXPECT_EQ(explicit_voter->voter_count(), 2u);
}

TEST(ConfigDecoder, RejectsABadLearnerFlagAndLearnersOnly) {
  for (const char* bad : {
           R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":"u"},{"id":2,"url":"v","learner":1}]})",
           R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":"u"},{"id":2,"url":"v","learner":"true"}]})",
           R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":[{"id":1,"url":"u","learner":true}]})",  // no voter
       }) {
    EXPECT_EQ(config_from_json(bad).error(), errc::invalid_config) << bad;
  }
}

TEST(ConfigDecoder, RevalidatesNodes) {
  EXPECT_EQ(config_from_json(R"({"clusterID":1,"index":1,"maxNodeID":1,"nodes":[{"id":0,"url":"u"}]})").error(),
            errc::invalid_node_id);
  EXPECT_EQ(config_from_json(R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":""}]})").error(),
            errc::node_url_required);
  EXPECT_EQ(config_from_json(
                R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":"u"},{"id":1,"url":"v"}]})")
                .error(),
            errc::duplicate_node_id);
  EXPECT_EQ(config_from_json(
                R"({"clusterID":1,"index":1,"maxNodeID":2,"nodes":[{"id":1,"url":"u"},{"id":2,"url":"u"}]})")
                .error(),
            errc::duplicate_node_url);
}

}  // namespace
}  // namespace raft
