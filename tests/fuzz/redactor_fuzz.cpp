// Fuzz target for secrets::Redactor and RedactingStream (src/secrets/redactor.h): any
// secrets and any text in; never a crash, a sanitizer report, a leak or a split-dependent
// output. See README.md.
//
// Input: byte 0 = number of secrets (mod 5); per secret a length byte (mod 48) and that many
// bytes; one byte that seeds the write split and picks the offset (mod 8) and alphabet (bit 3)
// of the embedded-base64 check; the rest is the text. Checks:
//   - no secret redactable: the text comes back unchanged;
//   - Find(text) is sorted, disjoint, not adjacent, and replacing its ranges gives Redact(text);
//   - a RedactingStream fed the text in pseudo-random chunks (empty ones too) gives exactly
//     Redact(text), holds back at most max_holdback() bytes, nothing after Flush();
//   - for every redactable secret without '*' (the replacement's byte, see the header), in
//     any text, every occurrence of its context-free forms (the bytes, hex, standalone
//     base64/base64url, all-bytes percent-encoding) lies inside a redacted range;
//   - its JSON-escaped and percent-encoded forms put between halves of the text (stripped of
//     '\' and '%', so no stray escape runs into them), and every base64 character carrying a
//     bit of it inside a longer blob, are redacted too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "secrets/redactor.h"

namespace {

using automan::secrets::RedactingStream;
using automan::secrets::Redactor;

[[noreturn]] void Broken(const char* what, std::string_view secret, std::string_view text) {
  fprintf(stderr, "redactor_fuzz: invariant broken: %s (secret %zu bytes, text %zu bytes)\n", what,
          secret.size(), text.size());
  abort();
}

std::string Hex(std::string_view s, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  for (const char ch : s) {
    out.push_back(digits[static_cast<uint8_t>(ch) >> 4]);
    out.push_back(digits[static_cast<uint8_t>(ch) & 15]);
  }
  return out;
}

std::string Base64(std::string_view s, bool url, bool pad) {
  const char* alphabet = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                             : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (size_t i = 0; i < s.size(); i += 3) {
    const size_t n = std::min<size_t>(3, s.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; ++k) v = v << 8 | (k < n ? static_cast<uint8_t>(s[i + k]) : 0);
    for (size_t k = 0; k <= n; ++k) out.push_back(alphabet[(v >> (18 - 6 * k)) & 63]);
    if (pad) out.append(3 - n, '=');
  }
  return out;
}

std::string Percent(std::string_view s, bool upper, bool form) {
  std::string out;
  char buf[4];
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (form && (alnum || c == '-' || c == '.' || c == '_')) {
      out.push_back(ch);
    } else if (form && c == ' ') {
      out.push_back('+');
    } else {
      snprintf(buf, sizeof buf, upper ? "%%%02X" : "%%%02x", c);
      out += buf;
    }
  }
  return out;
}

// Code points of `s`, or false if it is not valid UTF-8 (JSON strings are Unicode).
bool CodePoints(std::string_view s, std::vector<uint32_t>* cps) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<uint8_t>(s[i]);
    const size_t len = c < 0x80         ? 1
                       : (c >> 5) == 6  ? 2
                       : (c >> 4) == 14 ? 3
                       : (c >> 3) == 30 ? 4
                                        : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (size_t k = 1; k < len; ++k) {
      const auto d = static_cast<uint8_t>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = cp << 6 | (d & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    cps->push_back(cp);
    i += len;
  }
  return true;
}

// JSON string escaping: RFC 8259's must-escapes with UTF-8 as is, or everything outside
// printable ASCII as \uXXXX (surrogate pairs above the BMP) and "/" as "\/".
std::string Json(const std::vector<uint32_t>& cps, bool ascii) {
  std::string out;
  char buf[8];
  auto unit = [&](uint32_t u) {
    snprintf(buf, sizeof buf, "\\u%04X", u);
    out += buf;
  };
  for (const uint32_t cp : cps) {
    if (cp == '"' || cp == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(cp));
    } else if (cp == '\n') {
      out += "\\n";
    } else if (cp == '/' && ascii) {
      out += "\\/";
    } else if (cp < 0x20 || (ascii && cp >= 0x7F)) {
      if (cp >= 0x10000) {
        unit(0xD800 + ((cp - 0x10000) >> 10));
        unit(0xDC00 + ((cp - 0x10000) & 0x3FF));
      } else {
        unit(cp);
      }
    } else if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else {
      // Valid UTF-8 in, so re-encoding is copying; rebuild it from the code point.
      if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | cp >> 6));
      } else {
        if (cp < 0x10000) {
          out.push_back(static_cast<char>(0xE0 | cp >> 12));
        } else {
          out.push_back(static_cast<char>(0xF0 | cp >> 18));
          out.push_back(static_cast<char>(0x80 | (cp >> 12 & 0x3F)));
        }
        out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3F)));
      }
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

std::string WithoutEscapes(std::string_view s) {
  std::string out;
  for (const char c : s) {
    if (c != '\\' && c != '%') out.push_back(c);
  }
  return out;
}

using Ranges = std::vector<Redactor::Range>;

bool Covered(const Ranges& ranges, size_t begin, size_t end) {
  for (const Redactor::Range& r : ranges) {
    if (r.begin <= begin && end <= r.end) return true;
  }
  return false;
}

// Every occurrence of `needle` in `text` lies inside one of `ranges`.
void CheckAllCovered(const Ranges& ranges, std::string_view text, std::string_view needle,
                     const char* what, std::string_view secret) {
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + 1)) {
    if (!Covered(ranges, at, at + needle.size())) Broken(what, secret, text);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto take = [&in](size_t n) {
    const std::string_view head = in.substr(0, n);
    in.remove_prefix(head.size());
    return head;
  };
  std::vector<std::string> secrets;
  const size_t count = in.empty() ? 0 : static_cast<uint8_t>(take(1)[0]) % 5;
  for (size_t i = 0; i < count && !in.empty(); ++i) {
    const size_t len = static_cast<uint8_t>(take(1)[0]) % 48;
    secrets.emplace_back(take(len));
  }
  const uint8_t split_byte = in.empty() ? 0 : static_cast<uint8_t>(take(1)[0]);
  uint32_t split_seed = split_byte;
  const std::string_view text = in;

  const Redactor r(secrets);
  const std::string out = r.Redact(text);
  if (r.empty() && out != text) Broken("text changed without a redactable secret", "", text);
  const Ranges ranges = r.Find(text);
  std::string applied;
  size_t from = 0;
  for (size_t i = 0; i < ranges.size(); ++i) {
    if (ranges[i].begin >= ranges[i].end || ranges[i].end > text.size() ||
        (i > 0 && ranges[i].begin <= ranges[i - 1].end)) {
      Broken("Find ranges empty, out of order, overlapping or touching", "", text);
    }
    applied.append(text.substr(from, ranges[i].begin - from)).append(r.replacement());
    from = ranges[i].end;
  }
  applied.append(text.substr(from));
  if (applied != out) Broken("Find disagrees with Redact", "", text);

  // The same through a stream, split into chunks of 0..16 bytes.
  RedactingStream stream(r);
  std::string streamed;
  for (size_t at = 0; at < text.size();) {
    split_seed = split_seed * 1103515245u + 12345u;
    const size_t n = std::min<size_t>((split_seed >> 16) % 17, text.size() - at);
    stream.Write(text.substr(at, n), &streamed);
    if (stream.held_bytes() > r.max_holdback()) Broken("holdback over the bound", "", text);
    at += n;
  }
  stream.Flush(&streamed);
  if (stream.held_bytes() != 0) Broken("bytes held after Flush", "", text);
  if (streamed != out) Broken("streamed output differs from Redact", "", text);

  size_t injected = 0;
  for (const std::string& s : secrets) {
    if (!Redactor::IsRedactable(s) || s.find('*') != std::string::npos) continue;
    for (const std::string& form :
         {s, Hex(s, false), Hex(s, true), Base64(s, false, true), Base64(s, false, false),
          Base64(s, true, true), Base64(s, true, false), Percent(s, true, false),
          Percent(s, false, false)}) {
      CheckAllCovered(ranges, text, form, "a context-free form is not redacted", s);
    }
    if (injected++ >= 2) continue;  // the rest costs a Find per form: two secrets suffice

    const size_t half = text.size() / 2;
    const std::string before = WithoutEscapes(text.substr(0, half)) + " ";
    const std::string after = " " + WithoutEscapes(text.substr(half));
    std::vector<std::string> forms = {Percent(s, true, true), Percent(s, false, false)};
    std::vector<uint32_t> cps;
    if (CodePoints(s, &cps)) {
      forms.push_back(Json(cps, false));
      forms.push_back(Json(cps, true));
    }
    for (const std::string& form : forms) {
      const std::string embedded = before + form + after;
      if (!Covered(r.Find(embedded), before.size(), before.size() + form.size())) {
        Broken("an encoded form is not redacted", s, embedded);
      }
    }
    // Inside a base64 blob at offset p: every character carrying a bit of the secret goes.
    const size_t p = std::min<size_t>(split_byte % 8, text.size());
    const std::string blob = Base64(
        std::string(text.substr(0, p)) + s + std::string(text.substr(p)), split_byte & 8, true);
    const size_t first = 8 * p / 6;
    const size_t end = (8 * (p + s.size()) + 5) / 6;
    if (!Covered(r.Find(blob), first, end)) Broken("embedded base64 is not redacted", s, blob);
  }
  return 0;
}
