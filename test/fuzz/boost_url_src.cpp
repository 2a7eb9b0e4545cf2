// Boost.URL compiled into the fuzzer with coverage instrumentation, so libFuzzer sees which URL
// grammar paths an input reaches. The executable's definitions take precedence over the
// uninstrumented libboost_url.so that shardurl_core links (ELF symbol interposition).
#include <boost/url/src.hpp>
