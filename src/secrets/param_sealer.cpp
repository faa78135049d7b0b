#include "secrets/param_sealer.h"

namespace automan::secrets {

std::string KeySealer::Seal(std::string_view value) const {
  return auth::Base64UrlEncode(auth::Seal(key_, value));
}

Result<std::string> KeySealer::Open(std::string_view sealed) const {
  std::string bytes;
  if (!auth::Base64UrlDecode(sealed, bytes)) {
    return Status(ErrorCode::kDataLoss, "a sealed parameter is not base64url text");
  }
  return auth::Open(key_, bytes);
}

}  // namespace automan::secrets
