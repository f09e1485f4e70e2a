// The server process: storage, TLS, router, IM, listeners and signal handling, wired
// together on one reactor thread plus a storage worker thread.
#pragma once

#include "core/config.h"

namespace waddle::app {

// Runs until SIGINT/SIGTERM; returns the process exit code. Throws std::runtime_error for
// start-up failures (storage, certificates, listening sockets) with a readable message.
int run_server(const core::Config& config);

}  // namespace waddle::app
