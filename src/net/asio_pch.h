// Precompiled header for the translation units that use Asio (see ARCHITECTURE.md: keep Asio
// out of widely included headers; these are the only ones that pay for it).
#pragma once

#include <spdlog/spdlog.h>
#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl.hpp>
