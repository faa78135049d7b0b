#include "audit/text.h"

namespace automan::audit::detail {

std::string ToValidUtf8(std::string_view s, bool replace_nul) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == 0 && replace_nul) {
        out.append(kReplacement);
      } else {
        out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // no overlong forms
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // no overlong forms
      if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    }
    size_t good = 0;  // bytes of a valid prefix of the sequence
    if (len > 0) {
      good = 1;
      while (good < len && i + good < s.size()) {
        const auto b = static_cast<unsigned char>(s[i + good]);
        const bool ok = good == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
        if (!ok) break;
        ++good;
      }
    }
    if (len > 0 && good == len) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      // One replacement per maximal invalid prefix (the Unicode "substitution of maximal
      // subparts" practice).
      out.append(kReplacement);
      i += good > 0 ? good : 1;
    }
  }
  return out;
}

}  // namespace automan::audit::detail
