// Running an io_context with busy polling, for lower commit latency where
// waking an idle CPU is slow.
//
// A commit takes at least four thread wake-ups (client -> leader -> follower
// -> leader -> client). On a virtual machine each wake-up of an idle vCPU is
// an inter-processor interrupt and a VM exit: on the 2-vCPU development VM a
// 1-byte loopback ping-pong takes ~75 us idle and ~6 us busy. A thread that
// keeps polling for a while after its last event is still awake when the
// next message arrives (the follower's ack, the leader's next entries).
#pragma once

#include <chrono>
#include <cstddef>

namespace boost::asio {
class io_context;
}

namespace raft {

// Like io.run(), except that when no handler is ready it keeps polling (a
// non-blocking io.poll(), yielding the CPU between polls) for up to `spin`
// since the last handler ran, and only then blocks until the next event.
// Returns, like run(), once io is stopped or out of work; the result is the
// number of handlers run. spin <= 0 is io.run().
//
// The price is CPU: a polling thread keeps a core busy for `spin` after
// every burst of traffic. Use it only where cores are to spare: next to
// CPU-bound work the spinning uses up the thread's scheduler share, so the
// awaited message then waits behind that work (measured 1.5-3x slower
// commits; docs/performance.md). Measure first (raft-bench --busy-poll US).
std::size_t run_polling(boost::asio::io_context& io, std::chrono::microseconds spin);

}  // namespace raft
