#include "secrets/redactor.h"

#include <algorithm>
#include <set>
#include <string_view>
#include <utility>

#include "secrets/aho_corasick.h"
#include "secrets/scanner.h"

namespace automan::secrets {

namespace {

using secrets_detail::Pattern;

constexpr std::string_view kBase64Std =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Hex(std::string_view s, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (const char ch : s) {
    const auto c = static_cast<uint8_t>(ch);
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

// Character i of the base64 of `bytes` (6 bits from bit 6i; bits past the end are zero).
char Base64Char(std::string_view bytes, size_t i, std::string_view alphabet) {
  unsigned v = 0;
  for (size_t bit = 6 * i; bit < 6 * i + 6; ++bit) {
    const size_t byte = bit / 8;
    const unsigned b =
        byte < bytes.size() ? (static_cast<uint8_t>(bytes[byte]) >> (7 - bit % 8)) & 1 : 0;
    v = v * 2 + b;
  }
  return alphabet[v];
}

// The base64 of `secret` alone, padded.
std::string Base64(std::string_view secret, std::string_view alphabet) {
  std::string out;
  const size_t chars = (secret.size() * 8 + 5) / 6;
  for (size_t i = 0; i < chars; ++i) out.push_back(Base64Char(secret, i, alphabet));
  while (out.size() % 4 != 0) out.push_back('=');
  return out;
}

// The secret inside a longer base64 stream, preceded by k (mod 3) other bytes: the
// characters that depend on the secret's bits only. The character before them (if k > 0)
// and the one after (unless the secret ends on a character boundary) mix in other bytes'
// bits; the pattern is flagged so a match takes them along.
Pattern Base64Middle(std::string_view secret, size_t k, std::string_view alphabet) {
  std::string shifted(k, '\0');
  shifted.append(secret);
  const size_t first_bit = 8 * k;
  const size_t end_bit = 8 * (k + secret.size());
  const size_t first = (first_bit + 5) / 6;  // first character entirely within the secret
  const size_t end = end_bit / 6;            // one past the last such character
  Pattern p;
  for (size_t i = first; i < end; ++i) p.bytes.push_back(Base64Char(shifted, i, alphabet));
  p.extend_left = first_bit % 6 != 0;
  p.extend_right = end_bit % 6 != 0;
  return p;
}

void AddPatterns(std::string_view secret, std::vector<Pattern>& out) {
  out.push_back(Pattern{std::string(secret)});
  out.push_back(Pattern{Hex(secret, false)});
  out.push_back(Pattern{Hex(secret, true)});
  for (const std::string_view alphabet : {kBase64Std, kBase64Url}) {
    std::string padded = Base64(secret, alphabet);
    std::string unpadded = padded.substr(0, padded.find('='));
    out.push_back(Pattern{std::move(padded)});
    out.push_back(Pattern{std::move(unpadded)});
    for (size_t k = 0; k < 3; ++k) out.push_back(Base64Middle(secret, k, alphabet));
  }
}

}  // namespace

namespace {

std::shared_ptr<const secrets_detail::RedactorCore> BuildCore(
    const std::vector<std::string>& secrets, std::string replacement) {
  std::set<std::string_view> unique;
  size_t skipped = 0;
  for (const std::string& s : secrets) {
    if (Redactor::IsRedactable(s)) {
      unique.insert(s);
    } else {
      ++skipped;
    }
  }
  std::vector<Pattern> patterns;
  patterns.reserve(unique.size() * 13);
  for (const std::string_view s : unique) AddPatterns(s, patterns);
  // The readings fold '+' to ' ' before matching; fold the patterns the same way.
  for (Pattern& p : patterns) {
    std::replace(p.bytes.begin(), p.bytes.end(), '+', ' ');
  }
  auto core = std::make_shared<secrets_detail::RedactorCore>(secrets_detail::RedactorCore{
      .automaton = secrets_detail::Automaton(patterns),
      .replacement = std::move(replacement),
      .secret_count = unique.size(),
      .skipped_count = skipped,
  });
  return core;
}

}  // namespace

Redactor::Redactor() : Redactor(std::vector<std::string>{}) {}

Redactor::Redactor(const std::vector<std::string>& secrets, std::string replacement)
    : core_(BuildCore(secrets, std::move(replacement))) {}

std::string Redactor::Redact(std::string_view text) const {
  if (empty()) return std::string(text);
  secrets_detail::Scanner scanner(core_);
  std::string out;
  out.reserve(text.size());
  scanner.Write(text, &out);
  scanner.Flush(&out);
  return out;
}

std::vector<Redactor::Range> Redactor::Find(std::string_view text) const {
  std::vector<Range> ranges;
  if (empty()) return ranges;
  secrets_detail::Scanner scanner(core_);
  std::vector<std::pair<uint64_t, uint64_t>> found;
  scanner.RecordRanges(&found);
  std::string out;
  scanner.Write(text, &out);
  scanner.Flush(&out);
  ranges.reserve(found.size());
  for (const auto& [begin, end] : found) {
    ranges.push_back(Range{static_cast<size_t>(begin), static_cast<size_t>(end)});
  }
  return ranges;
}

bool Redactor::empty() const { return core_->secret_count == 0; }
size_t Redactor::secret_count() const { return core_->secret_count; }
size_t Redactor::skipped_count() const { return core_->skipped_count; }
size_t Redactor::pattern_count() const { return core_->automaton.pattern_count(); }
size_t Redactor::longest_pattern() const { return core_->automaton.longest(); }
size_t Redactor::max_holdback() const { return 6 * (longest_pattern() + 1) + 11; }
const std::string& Redactor::replacement() const { return core_->replacement; }

RedactingStream::RedactingStream(const Redactor& redactor)
    : scanner_(redactor.empty() ? nullptr
                                : std::make_unique<secrets_detail::Scanner>(redactor.core_)),
      pass_through_(redactor.empty()) {}

RedactingStream::~RedactingStream() = default;

// Explicit so that a moved-from stream is neither a scanner nor a pass-through: it must not
// leak what is written to it by mistake.
RedactingStream::RedactingStream(RedactingStream&& other) noexcept
    : scanner_(std::move(other.scanner_)),
      pass_through_(std::exchange(other.pass_through_, false)) {}

RedactingStream& RedactingStream::operator=(RedactingStream&& other) noexcept {
  scanner_ = std::move(other.scanner_);
  pass_through_ = std::exchange(other.pass_through_, false);
  return *this;
}

void RedactingStream::Write(std::string_view chunk, std::string* out) {
  if (scanner_) {
    scanner_->Write(chunk, out);
  } else if (pass_through_) {
    out->append(chunk);
  }
}

void RedactingStream::Flush(std::string* out) {
  if (scanner_) scanner_->Flush(out);
}

size_t RedactingStream::held_bytes() const { return scanner_ ? scanner_->held_bytes() : 0; }

}  // namespace automan::secrets
