// Parameter values: type checks, canonical text, binding `-p name=value` pairs.
#include <re2/re2.h>

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "runbook/quote.h"
#include "runbook/runbook.h"
#include "runbook/yaml_tree.h"

namespace automan {

namespace {

using runbook_detail::QuoteForMessage;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string Names(const Runbook& rb) {
  std::string out;
  for (const ParamSpec& p : rb.params) {
    if (!out.empty()) out += ", ";
    out += p.name;
  }
  return out;
}

}  // namespace

std::string_view ToString(ParamType t) {
  switch (t) {
    case ParamType::kString:
      return "string";
    case ParamType::kInt:
      return "int";
    case ParamType::kNumber:
      return "number";
    case ParamType::kBool:
      return "bool";
    case ParamType::kEnum:
      return "enum";
    case ParamType::kSecret:
      return "secret";
  }
  return "string";
}

bool IsValidSecretName(std::string_view name) {
  if (name.empty() || name.size() > 64 || std::isalpha(static_cast<unsigned char>(name[0])) == 0) {
    return false;
  }
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '_') return false;
  }
  return true;
}

std::string EnvName(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (c >= 'a' && c <= 'z') {
      out.push_back(static_cast<char>(c - 'a' + 'A'));
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      out.push_back(c);
    } else {
      out.push_back('_');  // '-' and anything else a validated name cannot contain
    }
  }
  return out;
}

Result<std::string> CanonicalParamValue(const ParamSpec& spec, std::string_view value) {
  const std::string name = "parameter \"" + spec.name + "\"";
  const bool secret = spec.type == ParamType::kSecret;
  // A secret's value never appears in a message.
  const std::string got = secret ? "" : ", got " + QuoteForMessage(value);
  if (value.size() > kMaxParamValueBytes) {
    return Error(ErrorCode::kInvalidArgument,
                 "{} is {} bytes long; values are limited to {} "
                 "bytes (64 KiB)",
                 name, value.size(), kMaxParamValueBytes);
  }
  if (value.find('\0') != std::string_view::npos) {
    return Error(ErrorCode::kInvalidArgument, "{} contains a NUL byte; remove it", name);
  }
  if (!runbook_detail::IsValidUtf8(value)) {
    return Error(ErrorCode::kInvalidArgument, "{} is not valid UTF-8 text", name);
  }
  switch (spec.type) {
    case ParamType::kInt: {
      std::string_view digits = value;
      bool neg = false;
      if (!digits.empty() && digits[0] == '-') {
        neg = true;
        digits.remove_prefix(1);
      }
      bool ok = !digits.empty();
      for (char c : digits) ok = ok && c >= '0' && c <= '9';
      if (!ok) {
        return Error(ErrorCode::kInvalidArgument,
                     "{} must be an integer (digits with an optional leading '-', e.g. 42){}", name,
                     got);
      }
      while (digits.size() > 1 && digits[0] == '0') digits.remove_prefix(1);
      // |INT64_MIN| = 9223372036854775808 fits only when negative.
      const std::string_view kMax = "9223372036854775807";
      const std::string_view kMinAbs = "9223372036854775808";
      std::string_view limit = neg ? kMinAbs : kMax;
      if (digits.size() > limit.size() || (digits.size() == limit.size() && digits > limit)) {
        return Error(ErrorCode::kInvalidArgument,
                     "{} is out of range; write an integer between {} and {}{}", name, INT64_MIN,
                     INT64_MAX, got);
      }
      if (digits == "0") return std::string("0");
      return (neg ? "-" : "") + std::string(digits);
    }
    case ParamType::kNumber: {
      bool chars_ok = !value.empty();
      bool has_digit = false;
      for (char c : value) {
        if (c >= '0' && c <= '9') {
          has_digit = true;
        } else if (c != '.' && c != '-' && c != '+' && c != 'e' && c != 'E') {
          chars_ok = false;
        }
      }
      std::string text(value);
      char* end = nullptr;
      errno = 0;
      double d = chars_ok && has_digit ? std::strtod(text.c_str(), &end) : 0;
      // Overflow gives inf (rejected); underflow to 0 or a denormal is still a finite value.
      if (!chars_ok || !has_digit || end != text.c_str() + text.size() || !std::isfinite(d)) {
        return Error(ErrorCode::kInvalidArgument,
                     "{} must be a finite decimal number (e.g. 3, -0.5 or 1e3){}", name, got);
      }
      return text;
    }
    case ParamType::kBool: {
      std::string v = Lower(value);
      if (v == "true" || v == "yes" || v == "1") return std::string("true");
      if (v == "false" || v == "no" || v == "0") return std::string("false");
      return Error(ErrorCode::kInvalidArgument, "{} must be true or false{}", name, got);
    }
    case ParamType::kEnum: {
      for (const std::string& m : spec.values) {
        if (m == value) return m;
      }
      std::string members;
      for (const std::string& m : spec.values) {
        if (!members.empty()) members += ", ";
        members += m;
      }
      return Error(ErrorCode::kInvalidArgument, "{} must be one of: {}{}", name, members, got);
    }
    case ParamType::kString:
    case ParamType::kSecret: {
      if (!spec.pattern.empty()) {
        RE2::Options opts;
        opts.set_log_errors(false);
        RE2 re(spec.pattern, opts);
        if (!re.ok()) {
          return Error(ErrorCode::kInvalidArgument, "{} has an invalid pattern: {}", name,
                       re.error());
        }
        if (!RE2::FullMatch(re2::StringPiece(value.data(), value.size()), re)) {
          return Error(ErrorCode::kInvalidArgument, "{} must match the pattern {}{}", name,
                       spec.pattern, got);
        }
      }
      return std::string(value);
    }
  }
  return std::string(value);
}

Result<RunParams> BindParams(const Runbook& rb,
                             const std::vector<std::pair<std::string, std::string>>& given) {
  RunParams out;
  std::set<std::string> seen;
  for (const auto& [name, value] : given) {
    const ParamSpec* spec = rb.FindParam(name);
    if (spec == nullptr) {
      if (rb.params.empty()) {
        return Error(ErrorCode::kInvalidArgument,
                     "unknown parameter {}; this runbook takes no parameters",
                     QuoteForMessage(name));
      }
      return Error(ErrorCode::kInvalidArgument, "unknown parameter {}; this runbook takes: {}",
                   QuoteForMessage(name), Names(rb));
    }
    if (!seen.insert(name).second) {
      return Error(ErrorCode::kInvalidArgument,
                   "parameter {} is given more than once; pass it once", QuoteForMessage(name));
    }
    AUTOMAN_ASSIGN_OR_RETURN(std::string canon, CanonicalParamValue(*spec, value));
    out[name] = ParamValue{std::string(ToString(spec->type)), std::move(canon)};
  }
  for (const ParamSpec& p : rb.params) {
    if (seen.count(p.name)) continue;
    if (p.default_value) {
      out[p.name] = ParamValue{std::string(ToString(p.type)), *p.default_value};
    } else if (p.required) {
      return Error(ErrorCode::kInvalidArgument,
                   "missing required parameter \"{}\" ({}); pass it with -p {}=...", p.name,
                   ToString(p.type), p.name);
    }
  }
  return out;
}

}  // namespace automan
