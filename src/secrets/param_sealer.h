// KeySealer: the queue's SecretParamSealer (queue/queue.h) — libsodium secretbox under the
// `params` key derived from the master key (auth/keys.h), as base64url text for the run's
// params JSON. Every process that executes queued runs (the server, `automan worker`)
// needs the same key file to open what another sealed.
#pragma once

#include <string>
#include <string_view>

#include "auth/crypto.h"
#include "queue/queue.h"

namespace automan::secrets {

class KeySealer final : public SecretParamSealer {
 public:
  explicit KeySealer(const auth::Key& key) : key_(key) {}
  std::string Seal(std::string_view value) const override;
  Result<std::string> Open(std::string_view sealed) const override;

 private:
  auth::Key key_;
};

}  // namespace automan::secrets
