#include "raft/http.hpp"
#include <gtest/gtest.h>
TEST(Smoke, Builds) { SUCCEED(); }
