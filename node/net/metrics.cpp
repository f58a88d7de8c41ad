#include "node/net/metrics.h"

#include <stdexcept>

#include "gossip/peer_id.h"
#include "node/net/metrics_http.h"

namespace murmur::net {

namespace {

// Label values are escaped as the text format requires: backslash, quote, newline.
std::string escaped(const std::string& v) {
  std::string out;
  for (const char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out;
}

std::string labels(const std::vector<std::string>& names, const std::vector<std::string>& values) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i)
    out += (i ? "," : "") + names[i] + "=\"" + escaped(values[i]) + "\"";
  return out;
}

}  // namespace

CounterFamily::CounterFamily(std::string name, std::string help, std::vector<std::string> label_names)
    : name_(std::move(name)), help_(std::move(help)), label_names_(std::move(label_names)) {}

void CounterFamily::check(const std::vector<std::string>& values) const {
  if (values.size() != label_names_.size())
    throw std::invalid_argument(name_ + ": " + std::to_string(values.size()) + " label values for " +
                                std::to_string(label_names_.size()) + " labels");
}

void CounterFamily::add(const std::vector<std::string>& values, uint64_t n) {
  check(values);
  std::lock_guard lock(mu_);
  values_[values] += n;
}

void CounterFamily::set(const std::vector<std::string>& values, uint64_t total) {
  check(values);
  std::lock_guard lock(mu_);
  values_[values] = total;
}

uint64_t CounterFamily::value(const std::vector<std::string>& values) const {
  std::lock_guard lock(mu_);
  const auto it = values_.find(values);
  return it == values_.end() ? 0 : it->second;
}

void CounterFamily::render(std::string& out) const {
  out += prom_header(name_, "counter", help_);
  std::lock_guard lock(mu_);
  if (values_.empty() && label_names_.empty()) out += prom_line(name_, 0);
  for (const auto& [values, n] : values_)
    out += prom_line(name_, static_cast<double>(n), labels(label_names_, values));
}

MetricsRegistry::MetricsRegistry(std::set<gossip::PeerId> named_peers) : named_(std::move(named_peers)) {}

CounterFamily& MetricsRegistry::counters(const std::string& name, const std::string& help,
                                         std::vector<std::string> label_names) {
  std::lock_guard lock(mu_);
  auto& f = families_[name];
  if (!f) {
    f = std::make_unique<CounterFamily>(name, help, std::move(label_names));
  } else if (f->label_names() != label_names) {
    throw std::logic_error("metric " + name + " is already registered with other labels");
  }
  return *f;
}

std::string MetricsRegistry::peer_label(const gossip::PeerId& id) const {
  return named_.count(id) ? gossip::short_name(id) : kUnknownPeer;
}

std::string MetricsRegistry::render() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, f] : families_) f->render(out);
  return out;
}

}  // namespace murmur::net
