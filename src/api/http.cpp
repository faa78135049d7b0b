#include "api/http.h"

namespace automan::api {

const std::string* HttpRequest::Header(std::string_view name) const {
  auto it = headers.find(std::string(name));
  return it == headers.end() ? nullptr : &it->second;
}

const std::string* HttpRequest::Query(std::string_view name) const {
  auto [b, e] = query.equal_range(std::string(name));
  if (b == e) return nullptr;
  return &std::prev(e)->second;
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

bool PercentDecode(std::string_view s, std::string& out, bool plus_is_space) {
  out.clear();
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

bool SplitTarget(std::string_view target, std::string& path,
                 std::multimap<std::string, std::string>& query) {
  size_t q = target.find('?');
  std::string_view raw_path = target.substr(0, q);
  if (!PercentDecode(raw_path, path, false)) return false;
  query.clear();
  if (q == std::string_view::npos) return true;
  std::string_view rest = target.substr(q + 1);
  while (!rest.empty()) {
    size_t amp = rest.find('&');
    std::string_view pair = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string k, v;
    if (!PercentDecode(pair.substr(0, eq), k, true)) return false;
    if (eq != std::string_view::npos && !PercentDecode(pair.substr(eq + 1), v, true)) return false;
    query.emplace(std::move(k), std::move(v));
  }
  return true;
}

bool SplitTarget(std::string_view target, std::string& path, std::vector<std::string>& segments,
                 std::multimap<std::string, std::string>& query) {
  if (!SplitTarget(target, path, query)) return false;
  segments.clear();
  std::string_view raw = target.substr(0, target.find('?'));
  if (raw.empty() || raw.front() != '/') return true;
  size_t i = 1;
  while (i <= raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string seg;
    if (!PercentDecode(raw.substr(i, j - i), seg, false)) return false;
    segments.push_back(std::move(seg));
    i = j + 1;
  }
  return true;
}

}  // namespace automan::api
