#include "auth/tickets.h"

#include <vector>

namespace automan::auth {

namespace {

constexpr std::string_view kPrefix = "amk1.";

Status Bad(std::string_view why) {
  return Status(ErrorCode::kUnauthenticated, "stream ticket " + std::string(why));
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t i = 0;
  for (;;) {
    size_t j = s.find(sep, i);
    out.push_back(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
    if (j == std::string_view::npos) break;
    i = j + 1;
  }
  return out;
}

}  // namespace

std::string TicketIssuer::Issue(std::string_view username, std::string_view credential_id,
                                std::string_view scope, Duration ttl) {
  if (ttl > kMaxTicketTtl) ttl = kMaxTicketTtl;
  if (ttl < std::chrono::seconds(1)) ttl = std::chrono::seconds(1);
  const Timestamp expires = clock_.Now() + ttl;
  std::string payload =
      std::string(username) + "\n" + std::string(credential_id) + "\n" + std::string(scope) + "\n" +
      std::to_string(expires.time_since_epoch().count()) + "\n" + Base64UrlEncode(RandomBytes(16));
  return std::string(kPrefix) + Base64UrlEncode(payload) + "." +
         Base64UrlEncode(HmacSha256(key_, payload));
}

Result<Ticket> TicketIssuer::Redeem(std::string_view ticket, std::string_view scope) {
  if (ticket.size() > 1024 || ticket.substr(0, kPrefix.size()) != kPrefix) {
    return Bad("is malformed");
  }
  ticket.remove_prefix(kPrefix.size());
  const size_t dot = ticket.find('.');
  if (dot == std::string_view::npos) return Bad("is malformed");
  std::string payload, mac;
  if (!Base64UrlDecode(ticket.substr(0, dot), payload) ||
      !Base64UrlDecode(ticket.substr(dot + 1), mac)) {
    return Bad("is malformed");
  }
  if (!ConstantTimeEquals(mac, HmacSha256(key_, payload))) return Bad("is not valid");
  std::vector<std::string_view> f = Split(payload, '\n');
  if (f.size() != 5) return Bad("is malformed");
  Ticket t{std::string(f[0]), std::string(f[1]), std::string(f[2]), {}};
  int64_t us = 0;
  try {
    us = std::stoll(std::string(f[3]));
  } catch (...) {
    return Bad("is malformed");
  }
  t.expires = Timestamp(Duration(us));
  const Timestamp now = clock_.Now();
  if (t.expires <= now) return Bad("has expired");
  if (t.scope != "all" && t.scope != scope) return Bad("is for another stream");
  std::lock_guard lock(mu_);
  for (auto it = used_.begin(); it != used_.end();) {
    it = it->second <= now ? used_.erase(it) : std::next(it);
  }
  if (!used_.emplace(std::string(f[4]), t.expires).second) return Bad("was used already");
  return t;
}

}  // namespace automan::auth
