// Status and Result<T>: the one error currency for expected failures.
//
// A function that can fail in a way the caller must handle returns Status (no value) or
// Result<T> (a value or a Status). Broken invariants are assertions, not Statuses.
// Codes follow the Abseil/gRPC canon so they map one-to-one onto HTTP statuses later.
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace automan {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong; retrying the same input fails again
  kNotFound,
  kAlreadyExists,
  kFailedPrecondition,  // the system is not in a state that allows the operation
  kAborted,             // a concurrent change won (stale fencing token, busy database)
  kUnavailable,         // transient: try again later
  kDeadlineExceeded,
  kCancelled,
  kResourceExhausted,
  kPermissionDenied,
  kUnauthenticated,  // no valid credentials were given
  kDataLoss,
  kInternal,
};

std::string_view ErrorCodeName(ErrorCode code);

// strerror(err) without strerror's shared buffer: safe on any thread.
std::string ErrnoText(int err);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "NOT_FOUND: run 01H... does not exist"
  std::string ToString() const;

  // Prefixes the message with context: "opening store: <message>".
  Status WithContext(std::string_view context) const;

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & {
    assert(ok());
    return std::get<T>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

template <typename... Args>
Status Error(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace automan

// Returns early from the enclosing function when `expr` (a Status) is not OK.
#define AUTOMAN_RETURN_IF_ERROR(expr)                  \
  do {                                                 \
    ::automan::Status automan_status_ = (expr);        \
    if (!automan_status_.ok()) return automan_status_; \
  } while (0)

#define AUTOMAN_CONCAT_INNER(a, b) a##b
#define AUTOMAN_CONCAT(a, b) AUTOMAN_CONCAT_INNER(a, b)
// AUTOMAN_ASSIGN_OR_RETURN(auto x, ExprReturningResult()); returns the Status on failure.
#define AUTOMAN_ASSIGN_OR_RETURN(lhs, expr) \
  AUTOMAN_ASSIGN_OR_RETURN_IMPL(AUTOMAN_CONCAT(automan_result_, __LINE__), lhs, expr)
#define AUTOMAN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
