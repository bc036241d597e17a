// Boost.JSON and Boost.URL, compiled header-only exactly once, here.
#include <boost/json/src.hpp>
#include <boost/url/src.hpp>
