// Stream tickets: EventSource cannot send an Authorization header, so a browser first asks
// POST /api/v1/auth/tickets for a ticket and opens the stream with `?ticket=`.
//
// A ticket is "amk1." base64url(payload) "." base64url(HMAC-SHA-256(payload)) under the
// ticket key (keys.h). The payload binds the subject's credential, a scope ("run:ID" or
// "all": any run and the activity stream), an expiry (at most 60 s ahead) and a random
// nonce; a ticket is redeemed once (the nonces of unexpired tickets are remembered in this
// process — a cluster behind a load balancer should send a stream to the server that
// issued its ticket, or use bearer tokens).
#pragma once

#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/crypto.h"
#include "common/clock.h"
#include "common/status.h"

namespace automan::auth {

inline constexpr Duration kMaxTicketTtl = std::chrono::seconds(60);

struct Ticket {
  std::string username;
  std::string credential_id;
  std::string scope;
  Timestamp expires{};
};

class TicketIssuer {
 public:
  TicketIssuer(const Key& key, const Clock& clock) : key_(key), clock_(clock) {}
  // ttl is clamped to 1..60 s.
  std::string Issue(std::string_view username, std::string_view credential_id,
                    std::string_view scope, Duration ttl = kMaxTicketTtl);
  // kUnauthenticated with the reason when the ticket is malformed, forged, expired, used
  // already, or does not cover `scope` ("run:ID" or "all").
  Result<Ticket> Redeem(std::string_view ticket, std::string_view scope);

 private:
  Key key_;
  const Clock& clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Timestamp> used_;  // nonce -> expiry
};

}  // namespace automan::auth
