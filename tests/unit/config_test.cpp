#include <raft/config.hpp>

#include <gtest/gtest.h>

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
