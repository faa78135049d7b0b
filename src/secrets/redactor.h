// Redactor: replaces known secret values, and their common encodings, in text.
//
// A run's secrets must not reach its log lines or error messages, whether a step prints a
// secret as is, base64-encodes it into an Authorization header, puts it in a URL or in a
// JSON document. A Redactor is built once from the secret values; Redact() scrubs one
// piece of text, and a RedactingStream scrubs a byte stream (a step's stdout) written in
// arbitrary chunks, so a secret split across two writes is caught too.
//
// What is matched, for every secret of at least kMinSecretBytes bytes:
//   - the bytes themselves;
//   - hex, all lower case or all upper case;
//   - standard base64 and base64url, padded or not, of the secret alone; and the secret at
//     any offset inside a longer base64 (or base64url) stream: base64 maps 3 bytes to 4
//     characters, so there are 3 alignments, and for each the run of characters that depend
//     on the secret's bytes only is a pattern. The one character on each side that mixes
//     secret bits with neighbouring bits is redacted too when it is a base64 character;
//   - URL/percent-encoding: the text is also read percent-decoded (%XX in either case, any
//     mix of encoded and plain bytes), with '+' read as a space;
//   - JSON string escaping: the text is also read JSON-unescaped (\" \\ \/ \b \f \n \r \t
//     and \uXXXX in either case, surrogate pairs as one character, decoded to UTF-8).
// The base64 and hex forms are matched in the decoded readings too (base64 inside a URL
// or a JSON string). In matching, '+' and ' ' are the same byte, so form-encoded spaces
// match; text that differs from a secret only by swapping '+' and ' ' is redacted as well.
//
// What is replaced: the union of the input ranges of all matches, in every reading, each
// maximal run of matched (or adjacent matched) bytes by one `replacement` (default "***").
// Overlapping secrets, and a secret that is a prefix of another, therefore leave no
// fragment behind. A match in a decoded reading replaces the encoded input bytes it came
// from (all of "%41%42%43%44", not just part of an escape).
//
// Not matched (see README.md): other encodings and combinations of them (JSON inside a URL,
// base64 of hex, double JSON escaping, line-wrapped base64, mixed-case hex, gzip, ...); a
// secret's transformation by the step (a substring, a hash, a different case); a JSON
// escape that starts one backslash off (text that is not a valid JSON string there).
// Output that contains the replacement text next to remaining bytes can spell a secret
// that contains the replacement (e.g. secret "x***"); with an empty replacement, bytes on
// both sides of a removed match can join into one. Neither happens when no secret contains
// a byte of the replacement.
//
// Cost: matching is one Aho–Corasick pass per reading (3 readings) over each input byte,
// independent of the number of secrets (about 12 ns per byte); building makes up to 13
// patterns per secret, each up to twice the secret's length.
//
// Thread-safety: a Redactor is immutable once built; copies share the automaton, and any
// number of threads may call its const methods and run streams over it at once. A
// RedactingStream is not thread-safe: one per writer (per step and output stream).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace automan::secrets_detail {
struct RedactorCore;
class Scanner;
}  // namespace automan::secrets_detail

namespace automan::secrets {

class Redactor {
 public:
  // Values shorter than this are not redacted: a 1-3 byte value ("1", "yes", "dev") occurs
  // by chance in ordinary output, and its encoded forms are even shorter runs of common
  // characters, so redacting it would garble logs without protecting anything (a 3-byte
  // secret is guessable anyway). Callers should refuse such values as secrets, e.g. when a
  // secret is created, rather than rely on the redactor; skipped_count() reports them.
  static constexpr size_t kMinSecretBytes = 4;
  static constexpr std::string_view kDefaultReplacement = "***";

  static bool IsRedactable(std::string_view secret) { return secret.size() >= kMinSecretBytes; }

  // An empty redactor: Redact() returns its input.
  Redactor();
  // Duplicates are merged; values shorter than kMinSecretBytes are skipped.
  explicit Redactor(const std::vector<std::string>& secrets,
                    std::string replacement = std::string(kDefaultReplacement));

  // The text with every match replaced. Same as a RedactingStream's writes plus Flush().
  std::string Redact(std::string_view text) const;

  // The input ranges Redact(text) replaces, each by one replacement: sorted, disjoint and
  // not adjacent. For counting or locating redactions, and for tests.
  struct Range {
    size_t begin;
    size_t end;  // exclusive
    bool operator==(const Range&) const = default;
  };
  std::vector<Range> Find(std::string_view text) const;

  bool empty() const;            // no redactable secret: everything passes through
  size_t secret_count() const;   // distinct secrets redacted
  size_t skipped_count() const;  // values ignored as shorter than kMinSecretBytes
  size_t pattern_count() const;  // distinct patterns in the automaton
  size_t longest_pattern() const;
  // The most bytes a RedactingStream holds back between writes (see RedactingStream).
  size_t max_holdback() const;
  const std::string& replacement() const;

 private:
  friend class RedactingStream;
  std::shared_ptr<const secrets_detail::RedactorCore> core_;
};

// Redacts a byte stream written in chunks of any size, as if the concatenation of all the
// writes up to Flush() were given to Redactor::Redact.
//
// Holdback rule: Write() appends to *out, redacted, every input byte that can no longer be
// part of a match, and holds back the rest until a later Write() or Flush(). A byte is held
// back only while a match may still include it: it belongs to the current partial match of
// one of the three readings (the longest suffix of that reading's decoded text that is a
// prefix of some pattern, at most longest_pattern() decoded bytes), or to an unfinished
// escape ("%4", "\u00"), or it is the base64 character just before such a partial match
// (a base64 match takes it along). In raw text that is at most longest_pattern() + 1 bytes;
// since a decoded byte may come from up to 6 input bytes ("\u0041"), the bound in input
// bytes is max_holdback() = 6 * (longest_pattern() + 1) + 11. Text that starts no pattern
// is not held back, except a trailing base64 character (a letter, a digit, + / - or _): a
// chunk that ends with a newline is normally emitted in full.
//
// Flush() ends the stream: it emits what was held back (an unfinished escape as plain
// text) and resets the matcher, so the next Write() starts a new stream and a secret
// split across a Flush() is not caught. Call it when the producer closes its output.
class RedactingStream {
 public:
  // Shares `redactor`'s automaton (a cheap copy). A moved-from stream emits nothing.
  explicit RedactingStream(const Redactor& redactor);
  ~RedactingStream();
  RedactingStream(RedactingStream&&) noexcept;
  RedactingStream& operator=(RedactingStream&&) noexcept;

  void Write(std::string_view chunk, std::string* out);
  void Flush(std::string* out);

  // Input bytes written but neither emitted nor redacted yet; at most max_holdback().
  size_t held_bytes() const;

 private:
  std::unique_ptr<secrets_detail::Scanner> scanner_;  // null: pass through or moved from
  bool pass_through_ = false;                         // an empty redactor's stream
};

}  // namespace automan::secrets
