// raft: streaming Raft consensus for C++ (umbrella header).
//
//   raft::Log        the replicated log (include/raft/log.hpp)
//   raft::FSM        your state machine (fsm.hpp)
//   raft::Config     cluster membership (config.hpp)
//   raft::LogEntry   entries and their framing (log_entry.hpp)
//   raft::Transport  the network, client and server side (transport.hpp)
//   raft::Clock      injected time (clock.hpp)
//   raft::run_polling  an io_context runner for lower latency (run.hpp)
#pragma once

#include "raft/clock.hpp"
#include "raft/config.hpp"
#include "raft/error.hpp"
#include "raft/fsm.hpp"
#include "raft/io.hpp"
#include "raft/log_entry.hpp"
#include "raft/transport.hpp"
#include "raft/version.hpp"
#include "raft/log.hpp"
#include "raft/run.hpp"
