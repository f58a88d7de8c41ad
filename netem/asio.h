// Boost.Asio for netem's sources. Boost 1.74's awaitable.hpp uses std::exchange without including
// <utility>, which breaks under C++20 unless <utility> comes first.
#pragma once

// clang-format off
#include <utility>
#include <boost/asio.hpp>
// clang-format on
