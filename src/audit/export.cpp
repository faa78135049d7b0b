#include "audit/export.h"

#include <date/date.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <boost/json/value.hpp>
#include <string_view>

#include "audit/text.h"

namespace automan::audit {

namespace {

void AppendJsonString(std::string& out, std::string_view s) {
  out += boost::json::serialize(boost::json::string(detail::ToValidUtf8(s, false)));
}

void AppendCsvCell(std::string& out, std::string_view raw) {
  std::string cell = detail::ToValidUtf8(raw, true);
  if (!cell.empty() && (cell[0] == '=' || cell[0] == '+' || cell[0] == '-' || cell[0] == '@' ||
                        cell[0] == '\t' || cell[0] == '\r')) {
    cell.insert(cell.begin(), '\'');
  }
  if (cell.find_first_of(",\"\r\n") == std::string::npos) {
    out += cell;
    return;
  }
  out.push_back('"');
  for (char c : cell) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

std::string FormatRfc3339Micros(Timestamp t) { return date::format("%FT%TZ", t); }

std::string AuditToJsonLines(const std::vector<AuditRecord>& entries) {
  std::string out;
  for (const AuditRecord& e : entries) {
    out += "{\"seq\":";
    out += std::to_string(e.seq);
    out += ",\"at\":";
    AppendJsonString(out, FormatRfc3339Micros(e.at));
    out += ",\"actor\":";
    AppendJsonString(out, e.actor);
    out += ",\"action\":";
    AppendJsonString(out, e.action);
    out += ",\"target\":";
    AppendJsonString(out, e.target);
    out += ",\"outcome\":";
    AppendJsonString(out, e.outcome);
    out += ",\"remote\":";
    AppendJsonString(out, e.remote);
    out += ",\"details\":";
    boost::system::error_code ec;
    boost::json::value details = boost::json::parse(e.details_json, ec);
    if (!ec && details.is_object()) {
      out += boost::json::serialize(details);  // one line, whatever the stored layout
    } else {
      AppendJsonString(out, e.details_json);
    }
    out += ",\"hash\":";
    AppendJsonString(out, e.hash);
    out += "}\n";
  }
  return out;
}

std::string AuditToCsv(const std::vector<AuditRecord>& entries) {
  std::string out = "seq,at,actor,action,target,outcome,remote,details,hash\r\n";
  for (const AuditRecord& e : entries) {
    out += std::to_string(e.seq);
    out.push_back(',');
    AppendCsvCell(out, FormatRfc3339Micros(e.at));
    for (const std::string* field :
         {&e.actor, &e.action, &e.target, &e.outcome, &e.remote, &e.details_json, &e.hash}) {
      out.push_back(',');
      AppendCsvCell(out, *field);
    }
    out += "\r\n";
  }
  return out;
}

}  // namespace automan::audit
